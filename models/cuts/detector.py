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

Cost: at 64 px wide a frame is a few thousand numbers, so the time goes to calls, not arithmetic. Each
frame is prepared once (features(): downscale, luma, the correlation template and window spreads) with
a few OpenCV/numpy calls on the CPU, where the decoded frame is, and its small tensors go to the device;
comparisons then reuse that. On the CPU device the tensors are worked on through the numpy arrays they
share memory with (host()), which costs a fraction of a tensor op per call.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from cuecast.models.common import pick_device
from cuecast.models.cuts.config import CutConfig
from cuecast.types import Boundary, Frame

# Structure is judged on luma (BT.601 weights); fades and dissolves on colour (the small frames).
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
    """What the detector keeps of one frame: small tensors on the device, and a few numbers."""

    t: float
    luma: torch.Tensor  # H x W float in 0..1 at analysis width
    small: torch.Tensor  # h x w x 3 float in 0..1, half the analysis size, for blend tests
    centre: torch.Tensor  # luma without a MAX_SHIFT border, zero mean and unit spread (as template)
    spread: torch.Tensor  # (2s+1) x (2s+1): luma spread of every shifted window x its pixel count
    mean: float
    std: float
    sat: float  # fraction of blown-out pixels
    peak: float  # brightest luma
    fast: bool = True  # on the CPU, worked on through numpy/OpenCV (host()); False: the tensor code any device runs

    @property
    def flat(self) -> bool:
        return self.std < FLAT_STD

    @property
    def dark(self) -> bool:
        return self.mean < DARK_MEAN and self.std < 2 * FLAT_STD


def downscale(image: np.ndarray, width: int) -> np.ndarray:
    """uint8 H x W x 3 -> float32 h x w x 3 in 0..1 at `width`, area-averaged.

    Inputs 8x the width or more are first resized to twice the output size from every step-th row: that
    reads about one source row per intermediate row (a 1280x720 frame costs little more than a 320x180
    one, since the work is bound by memory reads), and the 2x2 area average after it still takes 8 samples
    per output pixel, spread over its footprint, against aliasing. Done with OpenCV on the CPU,
    where the decoded frame already is: only the small frame goes to the device.
    """
    h0, w0 = image.shape[:2]
    height = max(8, int(round(h0 * width / w0)))
    if w0 >= 8 * width:
        # about one source row per intermediate row, as a strided view (no copy): half the memory read
        # of a bilinear pass over two rows each; the resize interpolates along the rows, and between them
        # only where the height is not a whole multiple
        step = h0 // (2 * height)
        image = cv2.resize(image[step // 2::step], (2 * width, 2 * height), interpolation=cv2.INTER_LINEAR)
    x = np.multiply(image, np.float32(1.0 / 255.0), dtype=np.float32)
    return cv2.resize(x, (width, height), interpolation=cv2.INTER_AREA)


def _window_spread(luma: np.ndarray, s: int) -> np.ndarray:
    """Luma spread of each of the (2s+1)^2 windows the correlation shifts over, times the window's
    pixel count: the denominator of the normalised cross-correlation, from box-filtered moments."""
    h, w = luma.shape
    k = (w - 2 * s, h - 2 * s)
    m1 = cv2.boxFilter(luma, -1, k, anchor=(0, 0), normalize=True, borderType=cv2.BORDER_REPLICATE)
    m2 = cv2.boxFilter(luma * luma, -1, k, anchor=(0, 0), normalize=True, borderType=cv2.BORDER_REPLICATE)
    m1, m2 = m1[: 2 * s + 1, : 2 * s + 1], m2[: 2 * s + 1, : 2 * s + 1]
    return (np.sqrt(np.maximum(m2 - m1 * m1, 0.0)) + 1e-4) * np.float32(k[0] * k[1])


def features(image: np.ndarray, t: float, width: int, device: torch.device, fast: bool = True) -> Feat:
    """Per-frame preparation in numpy (a handful of calls, no per-op overhead of tiny tensors), then the
    small arrays go to the device in one go; pairs of frames are compared there (cut_score)."""
    rgb = downscale(image, width)
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # BT.601 weights
    h, w = luma.shape
    small = cv2.resize(rgb, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
    s = MAX_SHIFT
    mean, std = (float(v[0, 0]) for v in cv2.meanStdDev(luma))
    ac = luma[s:h - s, s:w - s]
    c_mean, c_std = (float(v[0, 0]) for v in cv2.meanStdDev(ac))
    centre = (ac - np.float32(c_mean)) * np.float32(1.0 / (c_std + 1e-4))
    sat = np.count_nonzero(luma > SATURATED) / luma.size
    peak = cv2.minMaxLoc(luma)[1]
    dev = lambda a: torch.from_numpy(a) if device.type == "cpu" else torch.from_numpy(a).to(device)  # noqa: E731
    return Feat(t, dev(luma), dev(small), dev(centre), dev(_window_spread(luma, s)), mean, std, sat, peak,
                fast and device.type == "cpu")


def host(x: torch.Tensor, fast: bool):
    """With `fast` (a Feat's, CPU only), the tensor as the numpy array it shares memory with; else itself.
    Per-frame work on frames this small is all call overhead, and a numpy or OpenCV call costs a fraction
    of a tensor op's; code that indexes, slices and multiplies works the same on either."""
    return x.numpy() if fast else x


def _ncc_max(f: Feat, g: Feat) -> float:
    """Best normalised cross-correlation of f's centre against g's shifted windows."""
    if g.fast:  # one OpenCV call: the same correlation sums
        corr = cv2.matchTemplate(host(g.luma, True), host(f.centre, True), cv2.TM_CCORR)
        return float((corr / host(g.spread, True)).max())
    hc, wc = f.centre.shape
    wins = g.luma.unfold(0, hc, 1).unfold(1, wc, 1)
    return float((torch.tensordot(wins, f.centre, dims=2) / g.spread).max())


def structure_distance(a: torch.Tensor, b: torch.Tensor, shift: int = MAX_SHIFT) -> float:
    """1 - max normalised cross-correlation of luma over small shifts of b (0 same picture .. ~1 unrelated).

    Gain/offset invariant (brightness changes that keep the picture do not count) and tolerant of camera
    moves up to `shift` pixels per frame. Blown-out pixels (a flash, a light in shot) carry no structure
    and are left out of the correlation; a picture blown out almost everywhere counts as unrelated.
    Frame-to-frame comparisons go through frame_distance (the same number from precomputed halves).
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


def frame_distance(a: Feat, b: Feat) -> float:
    """structure_distance(a.luma, b.luma) at MAX_SHIFT, from what features() prepared: the common case
    (nothing blown out) is one convolution on the device instead of a dozen tensor ops."""
    if a.peak < SATURATED and b.peak < SATURATED:
        return 1.0 - min(1.0, max(-1.0, _ncc_max(a, b)))
    return structure_distance(a.luma, b.luma)


def cut_score(a: Feat, b: Feat) -> float:
    """How much b looks like a different shot from a, 0..~1.

    With a picture on both sides it is the structure distance alone: a cut changes what is where, while
    lighting changes, colour grades and flashes change colour and level but keep the structure. With a
    flat frame on either side there is no structure to compare, so the score is the luma change itself
    (a cut to a black card is large; one step of a fade is small).
    """
    if a.flat or b.flat:
        return float(min(1.0, 3.0 * (a.luma - b.luma).abs().mean()))
    return min(1.0, frame_distance(a, b))


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
        self.older: deque[Feat] = deque(maxlen=FLASH_WAIT + 1)  # the frames before prev, newest last
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
            if s > self.threshold and s > self.ratio * (self.level() + 0.02) and not self._returned(f, s):
                self.pending, self.waited = (self.prev, f, s), 0
            else:
                self.recent.append(s)
        if self.prev is not None:
            self.older.append(self.prev)
        self.prev = f
        return found

    def _returned(self, f: Feat, score: float) -> bool:
        """f looks like one of the few frames before prev again: the odd ones were in between (a flash
        whose first frame stayed just under the threshold), and the jump back from them is not a cut."""
        return any(cut_score(o, f) < 0.5 * score for o in self.older)

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

    def __init__(self, cfg: CutConfig | None = None, fast_path: bool = True):
        """fast_path=False runs the CPU through the tensor code other devices run (tests compare the two)."""
        self.cfg = cfg or CutConfig()
        self.device = pick_device(self.cfg.device, "cuts.device")
        self.fast_path = fast_path
        self.hard = HardCutTracker()
        self.gradual = GradualTracker() if self.cfg.gradual else None
        self.last_t: float | None = None  # time of the last boundary reported
        self.last_frame_t: float | None = None

    @torch.inference_mode()  # no autograd bookkeeping on the many tiny tensor ops of a frame
    def process_frame(self, frame: Frame) -> list[Boundary]:
        f = features(frame.image, frame.t, self.cfg.width, self.device, self.fast_path)
        self.last_frame_t = frame.t
        prev = self.hard.prev
        if prev is not None and prev.luma.shape != f.luma.shape:
            return self._new_picture_size(f)
        out: list[Boundary] = []
        first = self.hard.step(f)
        if first is not None:
            out.append(Boundary(t=first.t, kind="hard", decided_at=frame.t, source="detector"))
            if self.gradual is not None:
                self.gradual.reset(first)
        if self.gradual is not None:
            for b in self.gradual.step(f, hard_pending=self.hard_pending):
                b.decided_at = frame.t
                out.append(b)
        return self._space(out)

    def _new_picture_size(self, f: Feat) -> list[Boundary]:
        """A stream that changes its picture size (a new source behind a stream, a resolution switch) starts
        a new shot: frames of two sizes cannot be compared, and to a viewer it is a cut."""
        self.hard = HardCutTracker(self.hard.threshold, self.hard.ratio, self.hard.recent.maxlen)
        self.hard.step(f)
        if self.gradual is not None:
            self.gradual.reset(f)
        return self._space([Boundary(t=f.t, kind="hard", decided_at=f.t, source="detector")])

    def hard_candidate(self, t: float) -> float | None:
        """The hard-cut candidate opened on the frame at t, before the next frame confirms it, or None.

        A hard cut is confirmed one frame later (the next frame tells a cut from a flash); a caller that
        cannot wait (lookahead 0) may act on the candidate. Flash-like candidates, which the detector may
        hold for several frames, and ones closer than min_shot_s to the last boundary are not offered."""
        if self.hard.pending is None:
            return None
        before, cand, _ = self.hard.pending
        if cand.t != t or _flash_like(before, cand):
            return None
        if self.last_t is not None and cand.t - self.last_t < self.cfg.min_shot_s:
            return None
        return cand.t

    @property
    def hard_pending(self) -> bool:
        """True while a hard-cut candidate waits for the next frame's decision."""
        return self.hard.pending is not None

    @torch.inference_mode()
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


@dataclass(slots=True)
class BlendWindow:
    s: int  # buffer index of the window's first end (A)
    alphas: torch.Tensor  # blend weight of every frame s..e along A -> B
    resid: float  # mean residual of the inner frames, relative to |B - A|
    rms: float  # RMS colour change between A and B, 0..1


def _spread(a: Feat, b: Feat, grid: int = 4, share: float = 0.6) -> bool:
    """A fade or a dissolve changes the whole picture: most cells of a grid change by a fair part of the
    overall change (a person walking through changes a few cells a lot)."""
    d2 = ((b.small - a.small) ** 2).mean(-1)[None, None]
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
        # flattened small frames of buf and their Gram matrix, in preallocated storage with room for twice
        # the window: a new frame writes one row and column, dropping old frames only moves the start, and
        # the storage is compacted once every max_frames frames (no per-frame reallocation or copy)
        self.store_m = None  # host(): numpy on the CPU, a tensor on other devices
        self.store_g = None
        self.lo = self.hi = 0  # buf lives in rows lo..hi-1 of the storage

    @property
    def m(self) -> torch.Tensor:
        return torch.as_tensor(self.store_m[self.lo:self.hi])

    @property
    def g(self) -> torch.Tensor:
        return torch.as_tensor(self.store_g[self.lo:self.hi, self.lo:self.hi])

    def reset(self, f: Feat) -> None:
        self.buf, self.lo, self.hi = [], 0, 0
        self._push(f)

    def _push(self, f: Feat) -> None:
        x = host(f.small, f.fast).reshape(-1)  # the storage is host(tensor) too: numpy on the fast path
        if self.store_m is None or self.store_m.shape[1] != x.shape[0]:
            cap = 2 * self.max_frames + 2
            self.store_m = host(f.small.new_zeros(cap, x.shape[0]), f.fast)
            self.store_g = host(f.small.new_zeros(cap, cap), f.fast)
            self.buf, self.lo, self.hi = [], 0, 0
        if self.hi == self.store_m.shape[0]:  # full: move the window to the front
            n = self.hi - self.lo
            # "+ 0" copies first (numpy or torch alike): the two ranges may overlap
            self.store_m[:n] = self.store_m[self.lo:self.hi] + 0
            self.store_g[:n, :n] = self.store_g[self.lo:self.hi, self.lo:self.hi] + 0
            self.lo, self.hi = 0, n
        self.buf.append(f)
        self.store_m[self.hi] = x
        self.hi += 1
        row = self.store_m[self.lo:self.hi] @ x
        self.store_g[self.hi - 1, self.lo:self.hi] = row
        self.store_g[self.lo:self.hi, self.hi - 1] = row

    def _drop(self, k: int) -> None:
        self.buf = self.buf[k:]
        self.lo += k

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
        if not self._changed(e, n_min):
            return []  # the usual case, decided without building the window tables
        ok, score, alpha, resid = self._qualify(e, n_min, final)
        if not bool(ok.any()):
            return []
        s = int(torch.where(ok, score, torch.full_like(score, -1.0)).argmax())
        w = BlendWindow(s, alpha[s, s:e + 1], float(resid[s]), float(score[s]))
        found = self._classify(w, e)
        if found:
            self._drop(e)  # the new shot starts at e: never report this transition again
        return found

    def _changed(self, e: int, n_min: int) -> bool:
        """Does any window start differ from the end e by min_rms (RMS colour) or more? From the Gram
        matrix on the host arrays: |B - A_s|^2 = g_ee - 2 g_se + g_ss."""
        lo, k = self.lo, self.lo + e - n_min + 1
        g = self.store_g
        far = float((g[lo:k, lo:k].diagonal() - 2 * g[lo:k, lo + e]).max()) + float(g[lo + e, lo + e])
        return far >= self.min_rms ** 2 * self.store_m.shape[1]

    def _qualify(self, e: int, n_min: int, final: bool):
        """All window starts s at once: which qualify, their RMS change, blend weights, residuals."""
        g, n = self.g, self.g.shape[0]
        d = self.m.shape[1]
        diag = g.diagonal()
        ge = g[:, e]
        dss = (g[e, e] - 2 * ge + diag).clamp_min(1e-8)  # |B - A_s|^2 for each s
        rms = (dss / d).sqrt()
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
