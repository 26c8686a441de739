"""The windowed emotion estimator: frames (and audio, and cut times) in, EmotionWindow out.

Windows: window k ends at k * hop_s and covers [max(0, k * hop_s - window_s), k * hop_s) in media time;
the first ends at the first hop (0.5 s by default), so the early windows are shorter than window_s. A
window is emitted by the first frame at or after its end (that frame is not in it); `flush` emits the
windows up to and including the one that holds the last frame.

Per frame: the picture's affect features (cheap, every frame). Faces: Haar detection and batched
expression once per `face_interval_s` (default: once per hop), which keeps the cost low. Cuts: the
engine calls `observe_cut(t)` with its detector's boundaries (so does `cuecast emotion`); until it does, a simple
colour-histogram jump detector inside the estimator stands in (so library use without the engine counts cuts too; a
change that is one level shift of the whole picture, a fade of a flat field, is not a cut: `level_shift`; it misses a
cut between shots of the same colours, which the engine's detector sees); the first observe_cut switches the internal
detector off for good.

Smoothing: an exponential moving average with time constant smoothing_s over successive windows (halved
for the windows right after a cut, where the scene really changed; each axis's shortened while it moves steadily one
way: `Smoother`), then a dead band (`hysteresis`) on valence/arousal: the output moves only once the smoothed value has
moved more than the band, so small window-to-window wobble does not reach the music while a real change comes through
within seconds.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable

import numpy as np
import torch

from cuecast.models.common import pick_device
from cuecast.models.emotion.affect import (MOTION_LAG_S, MOTION_PERCENTILE, FrameAffect, StreamNorm, colour_stats, load_calibration, luma,
                                           motion_energy, per_30th_s, picture_va, small, standard_scores)
from cuecast.models.emotion.audio import AudioFeatures, audio_arousal
from cuecast.models.emotion.config import EmotionConfig
from cuecast.models.emotion.fusion import DIMS, fixed_fusion, load_head, window_steps
from cuecast.models.emotion.va import certainty, va_from_probs
from cuecast.types import AudioChunk, CutDetector, EmotionWindow, Frame

MAX_GAP_S = 60.0  # a gap in the input longer than this is skipped, not filled with held windows
FLAT_LUMA_STD = 0.02  # luma spread (0..1) under which a frame is a flat field, with no structure of its own
KEPT_STRUCTURE = 0.5  # luma correlation with the frame before above which a level shift is the same picture
CUT_HIST_JUMP = 0.5  # L1 distance of 4x4x4 colour histograms (0..2) above which a frame change is a cut
# A repeated frame (animation on twos or threes, frame-rate conversion) is not the picture standing still: a frame that
# differs from the one before by under REPEAT_SHARE of the last change is a repeat, and the next change is spread over
# the time since the last one. A hold longer than REPEAT_MAX_S (animation on threes at 24 fps holds 0.125 s) is stillness.
REPEAT_SHARE = 0.2
REPEAT_MAX_S = 0.15
# Valence and arousal follow a steady change faster (Casiez et al. 2012's 1-euro filter: the cut-off rises with the speed
# of the signal; emotion.follow_rate). Each axis's speed is how far its readings have moved over the last TREND_S: net, so
# that wobble, whose window-to-window steps alternate, cancels.
TREND_S = 1.0


def trim_to_lag(recent: deque, t: float, lag: float) -> None:
    """Drop what a reading at t against `lag` earlier no longer needs from a time-ordered deque of (time, ...):
    recent[0] stays the latest entry at least `lag` before t (at the start: the first)."""
    while len(recent) > 1 and recent[1][0] <= t - lag:
        recent.popleft()


def level_shift(img: np.ndarray, prev: np.ndarray | None) -> bool:
    """Whether a frame change is one level shift of the same picture: a flat field fading to black or white, a picture
    fading or changing exposure. Nothing was replaced, but a level crossing a bin edge jumps the colour histogram
    (fades.mp4: three "cuts" per fade, ninth pass in EMOTION_MODEL_CARD.md). Two things must hold: most of the change is
    one common offset on every pixel and channel (a switch between flat colour cards, counter.mp4, moves the channels
    differently), and the picture's structure is kept (luma correlates with the frame before, or there is none to
    keep): a cut from a bright shot to a dark one is mostly an offset too, but its structure is new."""
    if prev is None or prev.shape != img.shape:
        return False
    d = img.astype(np.float32) - prev.astype(np.float32)
    if float(np.abs(d - d.mean()).mean()) >= 0.5 * float(np.abs(d).mean()):
        return False
    a, b = luma(prev), luma(img)
    a, b = a - a.mean(), b - b.mean()
    sa, sb = float(a.std()), float(b.std())
    if min(sa, sb) < FLAT_LUMA_STD:
        return True  # a flat frame on either side: no structure to keep or to replace
    return float((a * b).mean()) / (sa * sb) > KEPT_STRUCTURE


def colour_hist(img: np.ndarray) -> np.ndarray:
    q = (img // 64).reshape(-1, 3).astype(np.int32)
    h = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64).astype(np.float32)
    return h / max(h.sum(), 1.0)


class Smoother:
    """EMA over windows, then a dead band on valence/arousal (see the module docstring).

    The average is the exponentially weighted mean of the windows seen so far, each weighed by the evidence it
    holds (`weight`: the share of a full window its frames cover; the first windows of a stream cover 0.5 s, 1 s,
    ...). A plain EMA started on the first window counts that window as if it had been seen forever: a 0.5 s window
    before the stream's first cut (cut rate 0) then held the output of a 3 s clip near it for the whole clip (eighth
    pass, EMOTION_MODEL_CARD.md). Once the windows are full and a few time constants have passed, this is the plain
    EMA (the weights' sum converges to 1).

    Each of valence and arousal shortens its time constant while its readings move steadily one way (`speedup`, the
    1-euro filter per axis): a fixed one trades lag for calm, and a scene that turns dark or busy should reach the
    music about as fast as the window sees it, while a steady picture's wobble is smoothed as before. The
    probabilities keep the plain time constant: they name the state on the overlay, where a label flicking between
    two near-equal classes helps nobody."""

    def __init__(self, tau: float, band: float, follow_rate: float = 0.0):
        self.tau, self.band, self.follow_rate = tau, band, follow_rate
        self.probs: np.ndarray | None = None
        self.va = np.zeros(2)
        self.out = np.zeros(2)
        self.mass = np.zeros(3)  # the decayed sums of the weights seen by (probabilities, valence, arousal): 1 in steady state
        self.clock = 0.0  # seconds of windows seen
        self.recent: deque[tuple[float, np.ndarray]] = deque()  # (clock, reading) back to TREND_S ago

    def speedup(self, va: np.ndarray, dt: float) -> np.ndarray:
        """How much faster than smoothing_s (valence, arousal) follow: 1 + speed / follow_rate, each axis's speed being
        how far its readings have moved, net, per second over the last TREND_S (the 1-euro filter's adaptive cut-off);
        1 when follow_rate is 0."""
        self.clock += max(dt, 0.0)
        trim_to_lag(self.recent, self.clock, TREND_S)
        t0, v0 = self.recent[0] if self.recent else (self.clock, va)
        self.recent.append((self.clock, va.copy()))
        if self.follow_rate <= 0 or self.clock - t0 <= 0:
            return np.ones(2)
        return 1.0 + np.abs(va - v0) / (self.clock - t0) / self.follow_rate

    def __call__(self, probs: np.ndarray, va: np.ndarray, dt: float, fast: bool,
                 weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        tau = self.tau / 2 if fast else self.tau
        rates = (1.0, *self.speedup(va, dt))  # probabilities, valence, arousal
        alpha = np.array([1.0 if tau <= 0 else 1.0 - math.exp(-dt * r / tau) for r in rates])
        w = alpha * max(weight, 1e-6)
        if self.probs is None:
            self.probs, self.va, self.out, self.mass = probs.copy(), va.copy(), va.copy(), w
            self.out_probs = probs.copy()
            return self.out_probs, self.out
        keep = (1.0 - alpha) * self.mass
        self.mass = keep + w
        self.probs = (keep[0] * self.probs + w[0] * probs) / self.mass[0]
        self.va = (keep[1:] * self.va + w[1:] * va) / self.mass[1:]
        self.out = np.clip(self.out, self.va - self.band, self.va + self.band)  # backlash: hysteresis
        # the same dead band on each probability (half as wide: they live on [0, 1]), so the dominant
        # emotion does not flip between two near-equal classes on every window
        held = np.clip(self.out_probs, self.probs - self.band / 2, self.probs + self.band / 2)
        self.out_probs = held / held.sum()
        return self.out_probs, self.out


class EmotionEstimator:
    def __init__(self, cfg: EmotionConfig | None = None):
        self.cfg = cfg or EmotionConfig()
        self.cfg.validate("emotion")
        self.device = pick_device(self.cfg.device, "emotion.device")
        self.faces = None
        if self.cfg.faces:
            from cuecast.models.emotion.faces import FaceExpressions  # cv2 only when faces are on
            self.faces = FaceExpressions(self.device, weights=self.cfg.face_weights or None)
        self.head = load_head(self.cfg.fusion_weights, self.device) if self.cfg.fusion_weights else None
        self.cal = load_calibration(self.cfg.calibration or None)
        self.norm = StreamNorm(self.cfg.adapt_s, self.cfg.adapt_prior_s, self.cfg.adapt_max)
        self.audio = AudioFeatures() if self.cfg.audio else None
        keep = self.cfg.window_s + self.cfg.cut_rate_s + 1.0
        self.keep_s = keep
        self.frames: deque[FrameAffect] = deque()
        self.face_log: deque[tuple[float, np.ndarray | None, float, float]] = deque()  # t, probs6, neutral, weight
        self.cuts: list[float] = []  # sorted media times
        self.external_cuts = False
        self.smoother = Smoother(self.cfg.smoothing_s, self.cfg.hysteresis, self.cfg.follow_rate)
        self.face_every = self.cfg.face_interval_s or self.cfg.hop_s
        self._next_face_t = -math.inf
        self._prev_y: np.ndarray | None = None
        self._recent: deque[tuple[float, np.ndarray, bool]] = deque()  # (t, luma, cut) back to MOTION_LAG_S ago
        self._prev_hist: np.ndarray | None = None
        self._prev_img: np.ndarray | None = None
        self._prev_t: float | None = None
        self._change: tuple[float, float] | None = None  # (time, mean |luma difference|) of the last frame that changed
        self._k: int | None = None  # index of the next window to emit: it ends at k * hop_s
        self._last: FrameAffect | None = None
        self.t_first: float | None = None
        self.record_steps = False  # tools/train_emotion.py: keep each window's fusion-head input
        self.steps: list[tuple[dict, dict, np.ndarray]] = []
        self.record_signals = False  # tools/calibrate_emotion.py: keep each window's raw picture signals
        self.signals: list[dict[str, float]] = []

    # ------------------------------------------------------------------ inputs

    def observe_cut(self, t: float) -> None:
        """A scene boundary at media time t (from the engine's cut detector or an external hint)."""
        if not self.external_cuts:
            self.external_cuts = True
            self.cuts.clear()  # the engine's detector replaces the internal one, also for the past
        t = float(t)
        if all(abs(c - t) > 1e-6 for c in self.cuts):
            bisect.insort(self.cuts, t)  # a detector may report a cut after later ones (hints, fades)

    def process_audio(self, chunk: AudioChunk) -> None:
        if self.audio is not None:
            self.audio.add(chunk.t, chunk.samples, chunk.rate)

    def _end(self, k: int) -> float:
        return k * self.cfg.hop_s  # from the index, so hours of hops do not accumulate rounding error

    def process_frame(self, frame: Frame) -> list[EmotionWindow]:
        t = float(frame.t)
        hop = self.cfg.hop_s
        if self._k is None:
            self.t_first = t
            self._k = math.floor(max(t, 0.0) / hop + 1e-9) + 1
        elif t - self._end(self._k) > MAX_GAP_S:
            # a long gap in a live feed (a stalled source, a timestamp jump): do not emit minutes of
            # windows about a picture nobody saw; resume with the windows that reach the new frame
            self._k = max(self._k, math.floor((t - self.cfg.window_s) / hop + 1e-9) + 1)
        out = []
        while t >= self._end(self._k) - 1e-9:
            out.append(self._emit(self._end(self._k)))
            self._k += 1
        self._add_frame(t, frame.image)
        return out

    def flush(self) -> list[EmotionWindow]:
        """Windows up to and including the one holding the last frame."""
        if self._last is None:
            return []
        out = []
        while self._end(self._k) - self.cfg.hop_s <= self._last.t + 1e-9:
            out.append(self._emit(self._end(self._k)))
            self._k += 1
        return out

    # ------------------------------------------------------------------ per frame

    def _add_frame(self, t: float, image: np.ndarray) -> None:
        img = small(image)
        y = luma(img)
        hist = colour_hist(img)
        is_cut = (self._prev_hist is not None and float(np.abs(hist - self._prev_hist).sum()) > CUT_HIST_JUMP
                  and not level_shift(img, self._prev_img))  # only looked at when the histogram jumped
        if is_cut and not self.external_cuts:
            self.cuts.append(t)
        # a cut is not motion: the jump would swamp the motion energy of the window
        motion = 0.0 if is_cut else self._frame_motion(t, y)
        b, s, c, w = colour_stats(img)
        rec = FrameAffect(t, b, s, c, w, motion if not is_cut else float("nan"), self._lagged_motion(t, y, is_cut))
        self.frames.append(rec)
        self._last = rec
        if is_cut:
            self._change = None
        self._prev_y, self._prev_hist, self._prev_t, self._prev_img = y, hist, t, img
        if self.faces is not None and t >= self._next_face_t:
            self._next_face_t = t + self.face_every
            self.face_log.append((t, *self._faces(image)))
        horizon = t - self.keep_s
        while self.frames and self.frames[0].t < horizon:
            self.frames.popleft()
        while self.face_log and self.face_log[0][0] < horizon:
            self.face_log.popleft()
        while self.cuts and self.cuts[0] < horizon:
            self.cuts.pop(0)

    def _frame_motion(self, t: float, y: np.ndarray) -> float:
        """Motion per 1/30 s since the last frame that changed; NaN for a repeated frame (REPEAT_SHARE: why).

        Doubling the speed of a cartoon on twos changes every frame instead of every other one: read frame to frame,
        the change per frame stays the same, so the motion would not move; read since the last change, it doubles."""
        prev_t = self._prev_t
        if self._prev_y is None or self._prev_y.shape != y.shape or prev_t is None or t <= prev_t:
            self._change = None
            return 0.0
        d = float(np.abs(y - self._prev_y).mean())
        since = prev_t if self._change is None else self._change[0]
        if self._change is not None and d < REPEAT_SHARE * self._change[1] and t - since <= REPEAT_MAX_S:
            return float("nan")
        self._change = (t, d)
        return per_30th_s(d, t - since)

    def _lagged_motion(self, t: float, y: np.ndarray, is_cut: bool) -> float:
        """Motion per 1/30 s against the frame MOTION_LAG_S earlier (affect: why); NaN when a cut lies between the
        two (a cut is not motion: the jump would swamp the window's motion energy)."""
        recent = self._recent
        trim_to_lag(recent, t, MOTION_LAG_S)
        cut = is_cut or any(c for _, _, c in itertools.islice(recent, 1, None))
        ref = recent[0] if recent else None
        recent.append((t, y, is_cut))
        if cut:
            return float("nan")
        return 0.0 if ref is None else motion_energy(y, ref[1], t - ref[0])

    def _faces(self, image: np.ndarray) -> tuple[np.ndarray | None, float, float]:
        from cuecast.models.emotion.faces import faces_to_ekman
        got = faces_to_ekman(self.faces(image))
        return (None, 0.0, 0.0) if got is None else got

    # ------------------------------------------------------------------ per window

    def _window_frames(self, start: float, end: float) -> list[FrameAffect]:
        sel = [f for f in self.frames if start <= f.t < end]
        if sel:
            return sel
        # no frame in the window (a gap in the input): the picture held is the last one before it
        before = [f for f in self.frames if f.t < start]
        if before:
            f = before[-1]
            return [FrameAffect(start, f.brightness, f.saturation, f.colourfulness, f.warmth, 0.0, 0.0)]
        return []

    def _cut_rate(self, end: float) -> float:
        span = min(self.cfg.cut_rate_s, max(end - (self.t_first or 0.0), self.cfg.window_s))
        return sum(1 for c in self.cuts if end - span <= c < end) / span

    def _picture_signals(self, frames: list[FrameAffect], end: float) -> dict[str, float]:
        """The window's raw picture signals, as picture_va reads them."""
        feats = np.array([[f.brightness, f.saturation, f.colourfulness, f.warmth] for f in frames]) if frames else np.zeros((1, 4))
        motions = np.array([f.motion for f in frames if not math.isnan(f.motion)] or [0.0])
        lagged = np.array([f.motion_lag for f in frames if not math.isnan(f.motion_lag)] or [0.0])
        b, s, c, w = (float(x) for x in feats.mean(axis=0))
        # a high percentile, not the mean: robust to a single jolt (a flash, a missed dissolve); not the
        # median: footage with duplicated frames (pulldown) has a zero difference on half its frames or more
        return dict(brightness=b, saturation=s, colourfulness=c, warmth=w,
                    motion=float(np.percentile(motions, MOTION_PERCENTILE)),
                    motion_lag=float(np.percentile(lagged, MOTION_PERCENTILE)),
                    cut_rate=self._cut_rate(end))

    def _emit(self, end: float) -> EmotionWindow:
        start = max(0.0, end - self.cfg.window_s)
        frames = self._window_frames(start, end)
        signals = ["picture"] if frames else []
        raw = self._picture_signals(frames, end)
        if self.record_signals and frames:
            self.signals.append({"start": start, "end": end, **raw})
        pv, pa = picture_va(**raw, cal=self.cal, shift=self.norm.shift())
        if frames:  # a window with no picture says nothing about where this stream usually sits
            self.norm.update(standard_scores(**raw, cal=self.cal), self.cfg.hop_s)
        snd = self.audio.window(start, end) if self.audio is not None else None
        a_ar = audio_arousal(*snd) if snd is not None else None
        if snd is not None:
            signals.append("audio")
        faces = self._window_faces(start, end)
        if faces is not None:
            signals.append("faces")
        if self.head is not None:
            probs, neutral, v, a = self._head(start, end, (pv, pa), a_ar, faces)
            signals.append("head")
        else:
            probs, neutral, v, a = fixed_fusion((pv, pa), a_ar, faces, self.cfg.neutral_temperature)
        if self.record_steps:  # the head's input, and this window's unsmoothed probabilities
            self.steps.append((*self._steps(start, end), probs))
        fast = any(end - self.cfg.window_s <= c < end for c in self.cuts)
        # the neutral share is smoothed as a seventh class beside the six, so the seven shares sum to 1
        p7 = np.append((1.0 - neutral) * probs, neutral)
        # the window's evidence: the share of window_s its frames can cover (less in a stream's first windows)
        cover = (end - max(start, self.t_first if self.t_first is not None else start)) / self.cfg.window_s
        sp7, sva = self.smoother(p7, np.array([v, a]), self.cfg.hop_s, fast, min(1.0, max(cover, 0.0)))
        n = float(np.clip(sp7[6], 0.0, 1.0))
        six = sp7[:6] / max(float(sp7[:6].sum()), 1e-12)
        return EmotionWindow(start=start, end=end, probs=tuple(float(p) for p in six),
                             valence=float(np.clip(sva[0], -1, 1)), arousal=float(np.clip(sva[1], -1, 1)),
                             signals=tuple(signals), neutral=n)

    def _window_faces(self, start: float, end: float) -> tuple[np.ndarray, float, float] | None:
        """(probs6, neutral, weight): the face analyses in the window averaged by evidence; None without a face."""
        seen = [(p, n, w) for t, p, n, w in self.face_log if start <= t < end and p is not None]
        if not seen:
            return None
        ws = np.array([w for _, _, w in seen])
        if ws.sum() <= 1e-9:
            return np.full(6, 1 / 6), 1.0, 0.0
        p7 = (np.stack([np.append((1 - n) * p, n) for p, n, _ in seen]) * ws[:, None]).sum(0) / ws.sum()
        analysed = sum(1 for t, *_ in self.face_log if start <= t < end)
        # faces seen in only some of the window's analyses count proportionally less
        return p7[:6] / max(float(p7[:6].sum()), 1e-9), float(p7[6]), float(ws.max()) * len(seen) / max(analysed, 1)

    def _steps(self, start: float, end: float) -> tuple[dict, dict]:
        blocks = list(self.audio.blocks) if self.audio is not None else []
        return window_steps(self.frames, self.face_log, blocks, self.cuts, start, end, self.cal)

    @torch.no_grad()
    def _head(self, start, end, pva, a_ar, faces):
        x, m = self._steps(start, end)
        xt = {k: torch.from_numpy(x[k])[None].to(self.device) for k in DIMS}
        mt = {k: torch.from_numpy(m[k] if k in self.head.signals else 0 * m[k])[None].to(self.device) for k in DIMS}
        probs = torch.softmax(self.head(xt, mt), dim=1)[0].cpu().numpy().astype(np.float64)
        _, _, dv, da = fixed_fusion(pva, a_ar, faces, self.cfg.neutral_temperature)  # the direct affect point
        tv, ta = va_from_probs(probs)  # without the table's bias: an unsure head maps near the origin
        wgt = self.cfg.direct_va_weight
        # the head has no neutral class: its uncertainty is the neutral share
        return probs, 1.0 - certainty(probs), (1 - wgt) * tv + wgt * dv, (1 - wgt) * ta + wgt * da


def analyse(est: EmotionEstimator, items: Iterable[Frame | AudioChunk], detector: CutDetector | None = None,
            on_frame: Callable[[Frame], None] | None = None) -> list[EmotionWindow]:
    """A whole input (frames and sound in media order) through the estimator, flushed: its windows.

    With a cut detector, its boundaries reach the estimator before the frame that confirmed them, in the order of
    the engine's pipeline (engine/pipeline.py). `cuecast emotion`, the calibration and the evaluation drive the
    estimator only through here, so what they read and what a render hears come from the same cuts."""
    windows: list[EmotionWindow] = []
    for item in items:
        if isinstance(item, AudioChunk):
            est.process_audio(item)
            continue
        for b in (detector.process_frame(item) if detector is not None else ()):
            est.observe_cut(b.t)
        windows += est.process_frame(item)
        if on_frame is not None:
            on_frame(item)
    for b in (detector.flush() if detector is not None else ()):
        est.observe_cut(b.t)
    return windows + est.flush()
