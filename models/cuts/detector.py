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

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cuecast.models.cuts.config import CutConfig
from cuecast.types import Boundary, Frame

# Luma weights (BT.601): structure is judged on luma, colour on the chroma-aware histogram.
_LUMA = (0.299, 0.587, 0.114)
FLAT_STD = 0.03  # luma std (0..1) below which a frame has no picture to correlate (black, a flat card)
DARK_MEAN = 0.08  # mean luma (0..1) below which a flat-ish frame counts as black for fades
MAX_SHIFT = 2  # motion compensation: +-2 px at 64 px wide is +-3% of the width per frame


def pick_device(name: str) -> torch.device:
    """"auto" means CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"cuts.device is {name!r} but this torch has no CUDA; use \"auto\" or \"cpu\"")
    return torch.device(name)


@dataclass(slots=True)
class Feat:
    """What the detector keeps of one frame."""

    t: float
    luma: torch.Tensor  # H x W float in 0..1 at analysis width
    small: torch.Tensor  # 3 x h x w float in 0..1, a quarter of the analysis size, for blend tests
    hist: torch.Tensor  # 64-bin RGB histogram, sums to 1
    mean: float
    std: float

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
    q = (rgb * 3.999).long().clamp_(0, 3)  # 4 levels per channel
    idx = (q[0] * 16 + q[1] * 4 + q[2]).flatten()
    hist = torch.bincount(idx, minlength=64).float()
    hist /= hist.sum()
    small = F.avg_pool2d(rgb.unsqueeze(0), 4, ceil_mode=True)[0]
    return Feat(t, luma, small, hist, float(luma.mean()), float(luma.std()))


def structure_distance(a: torch.Tensor, b: torch.Tensor, shift: int = MAX_SHIFT) -> float:
    """1 - max normalised cross-correlation of luma over small shifts of b (0 same picture .. ~1 unrelated).

    Gain/offset invariant (brightness changes and flashes that keep the picture do not count) and
    tolerant of camera moves up to `shift` pixels per frame.
    """
    h, w = a.shape
    s = shift
    ac = a[s:h - s, s:w - s]
    ac = (ac - ac.mean()) / (ac.std() + 1e-4)
    wins = b.unfold(0, h - 2 * s, 1).unfold(1, w - 2 * s, 1)  # (2s+1, 2s+1, h', w') views
    wins = wins.reshape(-1, h - 2 * s, w - 2 * s)
    mu = wins.mean(dim=(1, 2), keepdim=True)
    sd = wins.std(dim=(1, 2), keepdim=True) + 1e-4
    ncc = ((wins - mu) / sd * ac).mean(dim=(1, 2))
    return float(1.0 - ncc.max().clamp(-1.0, 1.0))


def hist_distance(a: Feat, b: Feat) -> float:
    return float(0.5 * (a.hist - b.hist).abs().sum())


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


class HardCutTracker:
    """Adaptive threshold on cut_score with one frame of lookahead against flashes."""

    def __init__(self, threshold: float = 0.35, ratio: float = 3.0, history: int = 24):
        self.threshold = threshold  # absolute floor: below this nothing is a cut
        self.ratio = ratio  # a cut stands this far above the shot's recent level
        self.recent: deque[float] = deque(maxlen=history)
        self.prev2: Feat | None = None  # frame before the candidate's previous frame
        self.prev: Feat | None = None
        self.pending: tuple[Feat, Feat, float] | None = None  # (before, candidate, score)

    def level(self) -> float:
        return float(np.median(self.recent)) if self.recent else 0.0

    def step(self, f: Feat) -> Feat | None:
        """Feed one frame; return the first frame of a new shot when a cut is confirmed."""
        found = None
        if self.pending is not None:
            before, cand, score = self.pending
            self.pending = None
            # a flash or a one-frame glitch: the frame after looks like the frame before again
            back = cut_score(before, f)
            if back < 0.5 * score:
                self.recent.append(back)
            else:
                found = cand
                self.recent.clear()  # new shot: its own noise level
        if self.prev is not None and found is None:
            s = cut_score(self.prev, f)
            if s > self.threshold and s > self.ratio * (self.level() + 0.02):
                self.pending = (self.prev, f, s)
            else:
                self.recent.append(s)
        self.prev = f
        return found


class OnlineCutDetector:
    """Scene boundaries of a frame stream, online. See the module docstring for the method."""

    def __init__(self, cfg: CutConfig | None = None):
        self.cfg = cfg or CutConfig()
        self.device = pick_device(self.cfg.device)
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


def blend_fit(frames: list[Feat]) -> tuple[float, float]:
    """How well the inner frames are linear blends of the two ends.

    Returns (mean relative residual, monotonicity of the blend weights 0..1). A dissolve (and a fade,
    where one end is black) gives a small residual and weights rising from 0 to 1; a pan or a zoom gives a
    large residual because its middle frames are moved pictures, not mixtures.
    """
    a, b = frames[0].small, frames[-1].small
    d = (b - a).flatten()
    dd = float(d.dot(d)) + 1e-8
    alphas, resid = [], []
    for f in frames[1:-1]:
        x = (f.small - a).flatten()
        al = float(x.dot(d)) / dd
        alphas.append(al)
        resid.append(float((x - al * d).norm()) / math.sqrt(dd))
    if not alphas:
        return 1.0, 0.0
    steps = np.diff([0.0] + alphas + [1.0])
    mono = float((steps >= -0.05).mean())
    return float(np.mean(resid)), mono


class GradualTracker:
    """Twin comparison: open a candidate when change rises above the shot's noise, judge it when stable."""

    def __init__(self, open_level: float = 0.0015, stable_frames: int = 3, min_s: float = 0.2,
                 max_s: float = 4.0, min_total: float = 0.08):
        self.open_level = open_level
        self.stable_frames = stable_frames
        self.min_s, self.max_s = min_s, max_s
        self.min_total = min_total  # the two ends must differ this much (mean abs colour, 0..1)
        self.prev: Feat | None = None
        # the shot's own frame-to-frame change: frames outside candidates, and the motion of candidates
        # that outlast max_s (sustained motion is the shot, not a transition)
        self.noise: deque[float] = deque(maxlen=48)
        self.cand: list[Feat] | None = None
        self.calm = 0

    def reset(self, f: Feat) -> None:
        self.cand, self.calm, self.prev = None, 0, f
        self.noise.clear()

    def _moving(self, c: float) -> bool:
        base = float(np.median(self.noise)) if self.noise else 0.0
        return c > max(self.open_level, 2.0 * base)

    def step(self, f: Feat, hard_pending: bool = False) -> list[Boundary]:
        prev, self.prev = self.prev, f
        if prev is None:
            return []
        c = _raw_change(prev, f)
        moving = self._moving(c)
        if self.cand is None:
            if moving and not hard_pending:
                self.cand, self.calm = [prev, f], 0
            else:
                self.noise.append(c)
            return []
        self.cand.append(f)
        self.calm = 0 if moving else self.calm + 1
        if self.calm >= self.stable_frames:
            frames = self.cand[: len(self.cand) - self.calm]
            self.cand = None
            return self._judge(frames)
        if self.cand[-1].t - self.cand[0].t > self.max_s:
            # endless motion: slide the window rather than grow it, and learn that this shot moves
            gone = self.cand.pop(0)
            self.noise.append(_raw_change(gone, self.cand[0]))
        return []

    def flush(self) -> list[Boundary]:
        if self.cand is None:
            return []
        frames, self.cand = self.cand, None
        return self._judge(frames)

    def _judge(self, frames: list[Feat]) -> list[Boundary]:
        dark = [i for i, f in enumerate(frames) if f.dark]
        if dark and 0 < dark[0] and dark[-1] < len(frames) - 1:
            # a dip to black: a fade out and a fade in back to back; judge each half on its own
            return self._judge(frames[: dark[0] + 1]) + self._judge(frames[dark[-1]:])
        if len(frames) < 3:
            return []
        a, b = frames[0], frames[-1]
        start, end = a.t, b.t
        if end - start < self.min_s:
            return []
        if a.flat and b.flat:
            return []  # a brightness ramp between flat pictures: nothing to cut between
        if _raw_change(a, b) < self.min_total:
            return []
        resid, mono = blend_fit(frames)
        if resid > 0.35 or mono < 0.8:
            return []
        if a.dark:  # fade in: the music lands where the picture leaves black
            return [Boundary(t=start, kind="fade", start=start, end=end)]
        if b.dark:  # fade out: it lands where the picture reaches black
            return [Boundary(t=end, kind="fade", start=start, end=end)]
        return [Boundary(t=start, kind="dissolve", start=start, end=end)]
