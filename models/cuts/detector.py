"""Online scene-boundary detection, one frame at a time, on small frames held as torch tensors.

Hard cuts: a frame whose picture structure (motion-compensated normalised cross-correlation of luma)
and colour distribution both jump against the recent in-shot level. The decision waits for exactly one
more frame: if that next frame looks like the frame before the jump again, the jump was a flash or a
glitch, not a cut. So a hard cut is reported from the process_frame call of the frame after the cut, and
its time is the first frame of the new shot.

Gradual transitions (twin comparison): when frame-to-frame change rises above the shot's noise level a
candidate opens; when the picture is stable again it closes and is judged as a whole. A candidate whose
one end is black and whose other end has a picture is a fade; one whose intermediate frames are a linear
blend of its two ends is a dissolve; anything else (a pan, a zoom, someone walking through) is motion.
Brightness ramps between flat frames (no picture on either side) are never boundaries.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cuecast.models.common import pick_device
from cuecast.models.cuts.config import CutConfig
from cuecast.types import Boundary, Frame

# Luma weights (BT.601): structure is judged on luma; fades and dissolves on colour (the small frames).
_LUMA = (0.299, 0.587, 0.114)
FLAT_STD = 0.03  # luma std (0..1) below which a frame has no picture to correlate (black, a flat card)
DARK_MEAN = 0.08  # mean luma (0..1) below which a flat-ish frame counts as black for fades
SATURATED = 0.96  # luma above this is blown out: no structure left in it
FLASH_RISE = 0.1  # a candidate this much brighter (mean luma) than the frame before may be a flash
FLASH_WAIT = 3  # frames a bright candidate may wait for the picture to come back
HARD_STRUCTURE = 0.35  # structure distance above which two pictures are different shots
# the two ends of a dissolve are judged stricter: over a longer window a shot's own motion and
# deformation (hands, faces) already reach the hard-cut level
GRADUAL_STRUCTURE = 0.5
MAX_SHIFT = 2  # motion compensation: +-2 px at 64 px wide is +-3% of the width per frame


@dataclass(slots=True)
class Feat:
    """What the detector keeps of one frame."""

    t: float
    luma: torch.Tensor  # H x W float in 0..1 at analysis width
    small: torch.Tensor  # 3 x h x w float in 0..1, half the analysis size, for blend tests
    mean: float
    std: float
    sat: float  # fraction of blown-out pixels

    @property
    def flat(self) -> bool:
        return self.std < FLAT_STD

    @property
    def dark(self) -> bool:
        return self.mean < DARK_MEAN and self.std < 2 * FLAT_STD


def downscale(image: np.ndarray, width: int, device: torch.device) -> torch.Tensor:
    """uint8 H x W x 3 -> float 3 x h x w in 0..1 at `width`, area-averaged.

    Large inputs are first subsampled by an integer stride that still leaves >= 4x4 samples per output
    pixel: it makes 1280x720 nearly as cheap as 320x180 and the area average removes the aliasing.
    """
    h0, w0 = image.shape[:2]
    step = max(1, w0 // (4 * width))
    x = torch.from_numpy(np.ascontiguousarray(image[::step, ::step])).to(device)
    x = x.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
    height = max(8, int(round(h0 * width / w0)))
    return F.interpolate(x, size=(height, width), mode="area")[0]


def features(image: np.ndarray, t: float, width: int, device: torch.device) -> Feat:
    rgb = downscale(image, width, device)
    w = torch.tensor(_LUMA, device=device).view(3, 1, 1)
    luma = (rgb * w).sum(0)
    small = F.avg_pool2d(rgb.unsqueeze(0), 2, ceil_mode=True)[0]
    return Feat(t, luma, small, float(luma.mean()), float(luma.std()), float((luma > SATURATED).float().mean()))


def structure_distance(a: torch.Tensor, b: torch.Tensor, shift: int = MAX_SHIFT) -> float:
    """1 - max normalised cross-correlation of luma over small shifts of b (0 same picture .. ~1 unrelated).

    Gain/offset invariant (brightness changes that keep the picture do not count) and tolerant of camera
    moves up to `shift` pixels per frame. Blown-out pixels (a flash, a light in shot) carry no structure
    and are left out of the correlation; a picture blown out almost everywhere counts as unrelated.
    """
    h, w = a.shape
    s = shift
    ac = a[s:h - s, s:w - s]
    wins = b.unfold(0, h - 2 * s, 1).unfold(1, w - 2 * s, 1)  # (2s+1, 2s+1, h', w') views
    wins = wins.reshape(-1, h - 2 * s, w - 2 * s)
    if float(a.max()) < SATURATED and float(b.max()) < SATURATED:
        an = ac - ac.mean()
        an = an / (an.square().mean().sqrt() + 1e-4)
        # per-window mean and spread from first and second moments: one pass, no strided std kernel
        mu = wins.mean(dim=(1, 2))
        sd = (wins.square().mean(dim=(1, 2)) - mu.square()).clamp_min(0).sqrt() + 1e-4
        ncc = (wins * an).mean(dim=(1, 2)) / sd  # an has zero mean, so the window's mean drops out
        return float(1.0 - ncc.max().clamp(-1.0, 1.0))
    wt = ((ac < SATURATED)[None] & (wins < SATURATED)).float()
    n = wt.sum(dim=(1, 2))
    if float(n.max()) < 0.15 * ac.numel():
        return 1.0
    n = n.clamp_min(1.0)[:, None, None]
    ma = (wt * ac).sum(dim=(1, 2), keepdim=True) / n
    mb = (wt * wins).sum(dim=(1, 2), keepdim=True) / n
    da, db = wt * (ac - ma), wt * (wins - mb)
    ncc = (da * db).sum(dim=(1, 2)) / ((da ** 2).sum(dim=(1, 2)) * (db ** 2).sum(dim=(1, 2)) + 1e-8).sqrt()
    ncc = torch.where(n[:, 0, 0] >= 0.15 * ac.numel(), ncc, torch.full_like(ncc, -1.0))
    return float(1.0 - ncc.max().clamp(-1.0, 1.0))


def cut_score(a: Feat, b: Feat) -> float:
    """How much b looks like a different shot from a, 0..~1.

    With a picture on both sides it is the structure distance alone: a cut changes what is where, while
    lighting changes, colour grades and flashes change colour and level but keep the structure. With a
    flat frame on either side there is no structure to compare, so the score is the luma change itself
    (a cut to a black card is large; one step of a fade is small).
    """
    if a.flat or b.flat:
        return float(min(1.0, 3.0 * (a.luma - b.luma).abs().mean()))
    return min(1.0, structure_distance(a.luma, b.luma))


def _flash_like(before: Feat, cand: Feat) -> bool:
    """Much brighter with much more of the picture blown out: what a flash, lightning or a muzzle
    flash does (a cut to a bright shot rarely blows out a fifth of the picture more than before)."""
    return cand.mean - before.mean > FLASH_RISE and cand.sat - before.sat > 0.2


class HardCutTracker:
    """Adaptive threshold on cut_score with lookahead against flashes.

    A candidate is decided on the next frame: if that frame looks like the frame before the candidate
    again, the candidate was a flash or a glitch. A candidate much brighter than the frame before (a
    flash lasting several frames looks exactly like that) may wait up to FLASH_WAIT frames for the
    picture to come back; only cuts to a much brighter shot are reported that late.
    """

    def __init__(self, threshold: float = HARD_STRUCTURE, ratio: float = 3.0, history: int = 24):
        self.threshold = threshold  # absolute floor: below this nothing is a cut
        self.ratio = ratio  # a cut stands this far above the shot's recent level
        self.recent: deque[float] = deque(maxlen=history)
        self.prev: Feat | None = None
        self.pending: tuple[Feat, Feat, float] | None = None  # (before, candidate, score)
        self.waited = 0

    def level(self) -> float:
        return float(np.median(self.recent)) if self.recent else 0.0

    def step(self, f: Feat) -> Feat | None:
        """Feed one frame; return the first frame of a new shot when a cut is confirmed."""
        found, was_pending = None, self.pending is not None
        if was_pending:
            found = self._resolve(f)
        # the frame that resolved a candidate is not compared with the candidate itself: after a flash
        # the picture coming back is not a cut
        if self.prev is not None and not was_pending:
            s = cut_score(self.prev, f)
            if s > self.threshold and s > self.ratio * (self.level() + 0.02):
                self.pending, self.waited = (self.prev, f, s), 0
            else:
                self.recent.append(s)
        self.prev = f
        return found

    def _resolve(self, f: Feat) -> Feat | None:
        before, cand, score = self.pending
        back = cut_score(before, f)
        if back < 0.5 * score:  # the picture came back: a flash or a glitch
            self.pending = None
            self.recent.append(back)
            return None
        self.waited += 1
        if _flash_like(before, cand) and self.waited < FLASH_WAIT:
            return None  # bright: maybe a longer flash, look at one more frame
        self.pending = None
        self.recent.clear()  # new shot: its own noise level
        return cand


class OnlineCutDetector:
    """Scene boundaries of a frame stream, online. See the module docstring for the method."""

    def __init__(self, cfg: CutConfig | None = None):
        self.cfg = cfg or CutConfig()
        self.device = pick_device(self.cfg.device, "cuts.device")
        self.hard = HardCutTracker()
        self.gradual = GradualTracker() if self.cfg.gradual else None
        self.last_t: float | None = None  # time of the last boundary reported
        self.last_frame_t: float | None = None

    def process_frame(self, frame: Frame) -> list[Boundary]:
        f = features(frame.image, frame.t, self.cfg.width, self.device)
        self.last_frame_t = frame.t
        out: list[Boundary] = []
        first = self.hard.step(f)
        if first is not None:
            out.append(Boundary(t=first.t, kind="hard", decided_at=frame.t, source="detector"))
            if self.gradual is not None:
                self.gradual.reset(first)
        if self.gradual is not None:
            for b in self.gradual.step(f, hard_pending=self.hard.pending is not None):
                b.decided_at = frame.t
                out.append(b)
        return self._space(out)

    def flush(self) -> list[Boundary]:
        out: list[Boundary] = []
        if self.gradual is not None:
            for b in self.gradual.flush():
                b.decided_at = self.last_frame_t
                out.append(b)
        return self._space(out)

    def _space(self, found: list[Boundary]) -> list[Boundary]:
        """No two boundaries closer than min_shot_s: the earlier one wins."""
        out = []
        for b in sorted(found, key=lambda b: b.t):
            if self.last_t is not None and b.t - self.last_t < self.cfg.min_shot_s:
                continue
            self.last_t = b.t
            out.append(b)
        return out


def _raw_change(a: Feat, b: Feat) -> float:
    """Mean absolute colour change on the small frames (not gain invariant: fades count)."""
    return float((a.small - b.small).abs().mean())


@dataclass(slots=True)
class BlendWindow:
    s: int  # buffer index of the window's first end (A)
    alphas: torch.Tensor  # blend weight of every frame s..e along A -> B
    resid: float  # mean residual of the inner frames, relative to |B - A|
    rms: float  # RMS colour change between A and B, 0..1


def _spread(a: Feat, b: Feat, grid: int = 4, share: float = 0.6) -> bool:
    """A fade or a dissolve changes the whole picture: most cells of a grid change by a fair part of the
    overall change (a person walking through changes a few cells a lot)."""
    d2 = ((b.small - a.small) ** 2).mean(0, keepdim=True)[None]
    cells = F.adaptive_avg_pool2d(d2, grid).flatten().sqrt()
    overall = float(d2.mean().sqrt())
    return float((cells > 0.3 * overall).float().mean()) >= share


class GradualTracker:
    """Fades and dissolves: windows whose frames are linear blends of the window's two ends.

    Every frame, the window end e is the frame `settle` frames back (so we can see that the picture has
    stopped moving along the blend), and every start s in the buffer is tried at once (blend_windows).
    A window qualifies when its ends are different pictures (by structure, unless one end is black),
    its inner frames sit on the line between the ends (small residual) with weights rising gradually
    from 0 to 1, and the frames after e no longer move along the line. Pans and zooms fail the residual
    (their middle frames are moved pictures, not mixtures) or the motion-compensated structure test;
    brightness ramps fail the structure test; hard cuts fail the gradual-rise test (and the hard
    tracker resets this one at every cut).
    """

    def __init__(self, max_s: float = 3.0, max_frames: int = 96, settle: int = 3, min_s: float = 0.2,
                 min_rms: float = 0.08, max_resid: float = 0.2, max_step: float = 0.34):
        self.max_s, self.max_frames, self.settle = max_s, max_frames, settle
        self.min_s = min_s  # shortest transition (shorter is a cut, the hard tracker's job)
        self.min_rms = min_rms  # the ends must differ this much (RMS colour, 0..1)
        self.max_resid = max_resid  # mean inner residual relative to the A -> B distance
        self.max_step = max_step  # largest blend-weight jump between neighbouring frames
        self.buf: list[Feat] = []
        self.m: torch.Tensor | None = None  # N x d flattened small frames of buf
        self.g: torch.Tensor | None = None  # their Gram matrix, kept up to date one row at a time

    def reset(self, f: Feat) -> None:
        self.buf, self.m, self.g = [], None, None
        self._push(f)

    def _push(self, f: Feat) -> None:
        x = f.small.flatten()
        self.buf.append(f)
        if self.m is None:
            self.m, self.g = x[None], (x @ x).view(1, 1)
            return
        row = self.m @ x
        self.m = torch.cat([self.m, x[None]])
        n = self.g.shape[0]
        g = self.g.new_empty(n + 1, n + 1)
        g[:n, :n], g[n, :n], g[:n, n], g[n, n] = self.g, row, row, x @ x
        self.g = g

    def _drop(self, k: int) -> None:
        self.buf, self.m, self.g = self.buf[k:], self.m[k:], self.g[k:, k:]

    def step(self, f: Feat, hard_pending: bool = False) -> list[Boundary]:
        self._push(f)
        over = 0
        while (len(self.buf) - over > self.max_frames
               or self.buf[-1].t - self.buf[over].t > self.max_s):
            over += 1
        if over:
            self._drop(over)
        if hard_pending:
            return []  # wait: if it is a cut the buffer restarts at the new shot
        return self._search(len(self.buf) - 1 - self.settle)

    def flush(self) -> list[Boundary]:
        return self._search(len(self.buf) - 1, final=True) if self.buf else []

    def _search(self, e: int, final: bool = False) -> list[Boundary]:
        n_min = 4
        if e < n_min:
            return []
        ok, score, alpha, resid = self._qualify(e, n_min, final)
        if not bool(ok.any()):
            return []
        s = int(torch.where(ok, score, torch.full_like(score, -1.0)).argmax())
        w = BlendWindow(s, alpha[s, s:e + 1], float(resid[s]), float(score[s]))
        found = self._classify(w, e)
        if found:
            self._drop(e)  # the new shot starts at e: never report this transition again
        return found

    def _qualify(self, e: int, n_min: int, final: bool):
        """All window starts s at once: which qualify, their RMS change, blend weights, residuals."""
        g, n = self.g, self.g.shape[0]
        d = self.m.shape[1]
        diag = g.diagonal()
        ge = g[:, e]
        dss = (g[e, e] - 2 * ge + diag).clamp_min(1e-8)  # |B - A_s|^2 for each s
        rms = (dss / d).sqrt()
        if float(rms[: e - n_min + 1].max()) < self.min_rms:  # nothing changed enough: the usual case
            none = torch.zeros(n, dtype=torch.bool, device=g.device)
            return none, rms, None, None
        alpha = (ge[None, :] - g - ge[:, None] + diag[:, None]) / dss[:, None]  # row s, column k
        dist2 = diag[None, :] - 2 * g + diag[:, None]
        rel = (dist2 - alpha ** 2 * dss[:, None]).clamp_min(0.0).sqrt() / dss.sqrt()[:, None]
        idx = torch.arange(n, device=g.device)
        s_col, k_row = idx[:, None], idx[None, :]
        inner = (k_row > s_col) & (k_row < e)
        resid = (rel * inner).sum(1) / inner.sum(1).clamp_min(1)
        da = alpha[:, 1:] - alpha[:, :-1]
        steps = (k_row[:, :-1] >= s_col) & (k_row[:, :-1] < e)
        max_step = torch.where(steps, da, torch.full_like(da, -9.0)).max(1).values
        mono = ((da >= -0.05) & steps).sum(1) / steps.sum(1).clamp_min(1)
        ok = (idx <= e - n_min) & (rms >= self.min_rms) & (resid <= self.max_resid)
        ok &= (max_step <= self.max_step) & (mono >= 0.9)
        if not final:
            # settled: the frames after e moved along the line at under half the window's rate
            after = (alpha[:, e + 1:] - 1.0).abs().amax(1) / max(1, n - e - 1)
            ok &= after < 0.5 / (e - idx).clamp_min(1)
        return ok, rms, alpha, resid

    def _classify(self, w: BlendWindow, e: int) -> list[Boundary]:
        a, b = self.buf[w.s], self.buf[e]
        if a.flat and b.flat:
            return []  # a brightness ramp between flat pictures: nothing to cut between
        # same picture at both ends (a lighting change, a slow pan): not a new shot. The shift allowed
        # grows with the window, as a camera move does
        shift = min(10, MAX_SHIFT + (e - w.s) // 2)
        if not (a.dark or b.dark) and structure_distance(a.luma, b.luma, shift) < GRADUAL_STRUCTURE:
            return []
        if not _spread(a, b):
            return []  # only part of the picture changed: something moved through it
        al = w.alphas
        k0 = w.s + int((al > 0.05).nonzero()[0])  # the refined start: where the blend begins
        k1 = w.s + int((al >= 0.95).nonzero()[0])  # and where it is complete
        start, end = self.buf[max(w.s, k0 - 1)].t, self.buf[k1].t
        if end - start < self.min_s:
            return []
        if a.dark:  # fade in: the music lands where the picture leaves black
            return [Boundary(t=start, kind="fade", start=start, end=end)]
        if b.dark:  # fade out: it lands where the picture reaches black
            return [Boundary(t=end, kind="fade", start=start, end=end)]
        return [Boundary(t=start, kind="dissolve", start=start, end=end)]
