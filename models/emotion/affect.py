"""Picture affect: per-frame colour and motion features, and their published mapping to valence/arousal.

Features (per frame, on a small copy of the analysis frame; the statistics do not need detail):
- brightness: mean luma (Rec. 601) in [0, 1]
- saturation: mean HSV saturation in [0, 1]
- colourfulness: Hasler & Süsstrunk (2003), "Measuring colourfulness in natural images",
  C = sigma_rgyb + 0.3 * mu_rgyb on the opponent axes rg = R - G, yb = (R + G)/2 - B, here / 255
- warmth: (mean R - mean B) / 255 in [-1, 1]
- motion: mean absolute luma difference to the previous frame, per 1/30 s of the time since the last frame that
  changed (so dropped frames and other frame rates give comparable numbers); 0 for a held still frame. A repeated
  frame (animation on twos, pulldown, frame-rate conversion) gives no reading: the next change is spread over the
  repeats (estimator.REPEAT_SHARE), so a cartoon played twice as fast reads twice the motion. A window reads its 75th
  percentile: robust to a single jolt
- motion_lag: the same difference to the frame MOTION_LAG_S earlier, also per 1/30 s. Slow movement adds up
  over the lag while encoding noise and flicker do not, so it stands above the noise where the frame-to-frame
  difference does not; fast movement saturates it (a texture that has moved past its grain differs no more).
  Each has its own calibration; the picture's motion weighs the lag reading by the noise share of the
  frame-to-frame difference (Calibration.motion_standard, seventh pass in the model card)
- cut rate (per window, from the engine's cut detector): cuts per second over the last cut_rate_s, read on a
  log scale like motion, log(rate + 1/6 s): the offset is one cut in the default 6 s count, its resolution

Mapping to the affect plane:
- Valdez & Mehrabian (1994), "Effects of color on emotions", J. Exp. Psychol. General 123(4): over
  standardised brightness (B) and saturation (S), pleasure = .69 B + .22 S and arousal = -.31 B + .60 S.
- Hanjalic & Xu (2005), "Affective video content representation and modeling", IEEE Trans. Multimedia
  7(1): arousal rises with motion activity and with the shot-cut rate (short shots), each a monotonic
  component of a weighted sum, smoothed over time.
The standardising constants come from ordinary footage (tools/calibrate_emotion.py, the JSON beside the
weights): each signal is centred on its median there (the cut rate, one-sided, on its mean: cut_standard) and scaled
by its spread, and so are the two combined scores, so that ordinary-looking footage sits at the origin and changes
move it. All signals but brightness and the cut rate are softly limited to +-Z_LIMIT spreads, so one extreme signal (a
grey card has no colour at all) cannot outvote the others; brightness (bounded to [0, 1]) is not (see
pleasure_arousal_scores), nor is the cut rate (its log grows slowly and the frame rate bounds it: cut_standard). Colourfulness joins
saturation (both measure chroma) and warmth leans arousal a little
(warm hues are the more arousing in Valdez & Mehrabian, though that effect is weaker than saturation's).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FEATURES = ("brightness", "saturation", "colourfulness", "warmth", "motion")
SIGNALS = FEATURES + ("motion_lag", "cut_rate")  # what picture_va reads: the window's means, its motion percentiles, the cut rate
CALIBRATION = Path(__file__).resolve().parent.parent / "weights" / "emotion_calibration.json"
Z_LIMIT = 2.5  # all signals but brightness are squashed to +-Z_LIMIT spreads (L * tanh(z / L)): near-linear within ordinary variation
LOG_SIGNALS = ("motion", "motion_lag", "cut_rate")  # standardised as log(value + eps) (a linear cut rate would need its old squash)
MOTION_PERCENTILE = 75.0  # of the window's frame differences (see the module docstring)
# motion_lag's interval: within the ~0.1-0.3 s over which vision integrates motion; slow movement invisible from frame to
# frame (under the encoding noise) adds up over it. Alone it saturates on fast clips (sixth pass), hence the blend (Calibration.motion_standard).
MOTION_LAG_S = 0.2
KNEE = 6.0  # output squash x / (1 + |x|^KNEE)^(1/KNEE): the smallest even power whose slope at +-0.6 is >= 0.9 (see bounded)


@dataclass(frozen=True)
class Calibration:
    """Centre and scale of each picture signal on ordinary footage, and of the two combined scores.

    Made by tools/calibrate_emotion.py (see models/weights/EMOTION_MODEL_CARD.md for the set). A signal
    with transform "log" is standardised as log(value + eps) (motion: twice as fast is the same step
    whatever the level). `gain` (valence, arousal) sets how far one spread of ordinary variation moves
    each output (see the model card: colour is weaker evidence of valence than motion and cuts are of arousal).
    """

    centre: dict[str, float] = field(hash=False)
    scale: dict[str, float] = field(hash=False)
    log_eps: dict[str, float] = field(hash=False)  # signals standardised on a log scale, with their offset
    valence: tuple[float, float]  # (centre, scale) of the combined pleasure score
    arousal: tuple[float, float]
    gain: tuple[float, float]  # (valence, arousal)

    def standardise(self, name: str, value: float) -> float:
        """The signal in spreads of ordinary footage, before the soft limit."""
        if name in self.log_eps:
            value = math.log(max(value, 0.0) + self.log_eps[name])
        return (value - self.centre[name]) / self.scale[name]

    def z(self, name: str, value: float) -> float:
        return soft_limit(self.standardise(name, value))

    def motion_standard(self, motion: float, motion_lag: float) -> float:
        """The picture's motion in spreads of ordinary footage, before the soft limit: the frame-to-frame and the
        MOTION_LAG_S reading (each on its own calibration), weighed by how much of the frame-to-frame difference is
        noise. Its log offset is the encoding noise of a still picture (~0.003 mean |dY|): a difference well above it
        resolves speed frame to frame (fast movement, where the 0.2 s difference saturates: the texture has moved past
        its grain), one at or below it does not, while slow movement still adds up over the lag and the noise does
        not. So the lag reading's weight is the noise share eps / (motion + eps): ~0.1 for a clearly moving picture,
        ~0.5 at the noise floor, 1 for a held frame."""
        w = self.log_eps["motion"] / (max(motion, 0.0) + self.log_eps["motion"])
        return (1.0 - w) * self.standardise("motion", motion) + w * self.standardise("motion_lag", motion_lag)


def soft_limit(z: float) -> float:
    """A standardised signal squashed to +-Z_LIMIT spreads: near-linear within ordinary variation."""
    return Z_LIMIT * math.tanh(z / Z_LIMIT)


@functools.lru_cache(maxsize=8)  # read-only: the same file gives the same frozen Calibration
def load_calibration(path: str | Path | None = None) -> Calibration:
    """The calibration JSON (data only; None or "": the shipped one); a clear error naming the tool that makes one."""
    p = Path(path) if path else CALIBRATION
    fix = "make one with `python tools/calibrate_emotion.py`, or leave emotion.calibration empty for the shipped one"
    try:
        d = json.loads(p.read_text())
        sig = d["signals"]
        if "motion_lag" not in sig:  # the second motion reading (seventh pass): it has its own centre and scale
            raise ValueError("no motion_lag signal (a calibration made before the seventh pass)")
        linear = [k for k in LOG_SIGNALS if sig[k].get("transform") != "log"]
        if linear:  # read without their old second squash (pleasure_arousal_scores): a linear one would saturate the sum
            raise ValueError(f"{', '.join(linear)} not on a log scale (a calibration made before the fifth pass)")
        if sig["cut_rate"].get("centre_on") != "mean":  # ninth pass: a median-centred cut rate sits at no cut at all
            raise ValueError("cut_rate centred on its median (a calibration made before the ninth pass)")
        return Calibration(centre={k: float(sig[k]["centre"]) for k in SIGNALS},
                           scale={k: max(float(sig[k]["scale"]), 1e-6) for k in SIGNALS},
                           log_eps={k: float(sig[k]["eps"]) for k in SIGNALS if sig[k].get("transform") == "log"},
                           valence=(float(d["valence"]["centre"]), max(float(d["valence"]["scale"]), 1e-6)),
                           arousal=(float(d["arousal"]["centre"]), max(float(d["arousal"]["scale"]), 1e-6)),
                           gain=_gains(d["gain"]))
    except FileNotFoundError:
        raise FileNotFoundError(f"emotion calibration not found at {p}: {fix}") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"emotion calibration at {p} is broken ({e.__class__.__name__}: {e}): {fix}") from None


def _gains(g) -> tuple[float, float]:
    """{"valence": gv, "arousal": ga}; a single number (calibrations made before the two were separate) is both."""
    if isinstance(g, dict):
        return float(g["valence"]), float(g["arousal"])
    return float(g), float(g)


def small(image: np.ndarray, max_width: int = 96) -> np.ndarray:
    """Subsample by an integer stride: the affect statistics do not need more than ~100 px a side."""
    step = max(1, max(image.shape[0], image.shape[1]) // max_width)
    return image[::step, ::step]


def luma(img: np.ndarray) -> np.ndarray:
    """Rec. 601 luma in [0, 1], float32."""
    f = img.astype(np.float32)
    return (0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]) / 255.0


def colour_stats(img: np.ndarray) -> tuple[float, float, float, float]:
    """(brightness, saturation, colourfulness, warmth) of an RGB uint8 image."""
    f = img.astype(np.float32) / 255.0
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    # elementwise over the three planes: numpy's reduction over a length-3 last axis is ~20x slower
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    sat = np.where(mx > 1e-6, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
    rg, yb = r - g, 0.5 * (r + g) - b
    colourfulness = math.hypot(float(rg.std()), float(yb.std())) + 0.3 * math.hypot(float(rg.mean()), float(yb.mean()))
    brightness = float((0.299 * r + 0.587 * g + 0.114 * b).mean())
    return brightness, float(sat.mean()), colourfulness, float(r.mean() - b.mean())


def motion_energy(y: np.ndarray, prev_y: np.ndarray | None, dt: float) -> float:
    """Mean |luma difference| to the previous frame, normalised to a 1/30 s interval."""
    if prev_y is None or prev_y.shape != y.shape or dt <= 0:
        return 0.0
    return per_30th_s(float(np.abs(y - prev_y).mean()), dt)


def per_30th_s(difference: float, dt: float) -> float:
    """A picture difference over dt seconds as the difference per 1/30 s (dt floored at 1/120 s)."""
    return difference * (1.0 / 30.0) / max(dt, 1.0 / 120.0)


@dataclass(slots=True)
class FrameAffect:
    t: float
    brightness: float
    saturation: float
    colourfulness: float
    warmth: float
    motion: float
    motion_lag: float = float("nan")  # per 1/30 s against the frame MOTION_LAG_S earlier; NaN: a cut in between

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, k) for k in FEATURES], dtype=np.float32)


def pleasure_arousal_scores(cal: Calibration, brightness: float, saturation: float, colourfulness: float,
                            warmth: float, motion: float, motion_lag: float, cut_rate: float) -> tuple[float, float]:
    """The published combinations of the standardised signals, before their own calibration.

    What is squashed (fifth pass, EMOTION_MODEL_CARD.md; the cut rate since the ninth: cut_standard): every signal but
    brightness and the cut rate is softly limited to
    +-Z_LIMIT spreads, so that one extreme (a grey card has no colour at all) cannot outvote the rest. Brightness
    is not: mean luma lies in [0, 1], so it cannot run away (about -3.2..+4 spreads of ordinary footage), and the
    limit flattened the dark quarter of ordinary footage, where a picture made darker still looks darker to a
    viewer. Motion and cut rate are standardised on a log scale (doubling either is the same step at any level,
    Weber) and get no second squash: the saturating tanh(z / 2) that stood on top of the soft limit made a
    doubling of an already high cut rate or motion nearly vanish (a number counter: 0.4 -> 0.9 cuts/s).
    """
    zb = cal.standardise("brightness", brightness)
    zs = 0.5 * (cal.z("saturation", saturation) + cal.z("colourfulness", colourfulness))  # chroma
    pleasure = 0.69 * zb + 0.22 * zs  # Valdez & Mehrabian 1994
    colour_arousal = -0.31 * zb + 0.60 * zs + 0.15 * cal.z("warmth", warmth)  # Valdez & Mehrabian 1994
    # Hanjalic & Xu 2005: motion activity and cut rate, each a monotonic component (here: their logs)
    zm = soft_limit(cal.motion_standard(motion, motion_lag))
    return pleasure, 0.35 * colour_arousal + 0.40 * zm + 0.25 * cut_standard(cal, cut_rate)


def cut_standard(cal: Calibration, cut_rate: float) -> float:
    """The cut rate in spreads of ordinary footage, with no soft limit (ninth pass, EMOTION_MODEL_CARD.md): centred on
    ordinary footage's mean log rate (a cut every ~8 s; tools/calibrate_emotion.py), so a shot held longer reads calmer
    and faster cutting busier. It needs no limit: the log already compresses it (5 cuts/s is ~3.5 spreads, a cut on
    every frame of 30/s ~5.7), and the limit flattened the pace of a trailer (1-2 cuts/s), where twice the cuts
    still looks busier to a viewer."""
    return cal.standardise("cut_rate", cut_rate)


def standard_scores(brightness: float, saturation: float, colourfulness: float, warmth: float,
                    motion: float, motion_lag: float, cut_rate: float, cal: Calibration | None = None) -> np.ndarray:
    """(pleasure, arousal) of a window's picture signals in spreads of ordinary footage: 0 at the
    calibration set's median."""
    cal = cal or load_calibration()
    p, a = pleasure_arousal_scores(cal, brightness, saturation, colourfulness, warmth, motion, motion_lag, cut_rate)
    return np.array([(p - cal.valence[0]) / cal.valence[1], (a - cal.arousal[0]) / cal.arousal[1]])


def bounded(x: float) -> float:
    """The output squash: x / (1 + |x|^KNEE)^(1/KNEE), in (-1, 1), slope 1 at 0 like tanh.

    tanh spends the outer third of the range compressing: its slope is 0.64 at +-0.6 and 0.36 at +-0.8, so a night
    scene (valence ~-0.6) made darker, or a near-still clip (arousal ~-0.7) frozen, moved the output by about half of
    what the same step moves an ordinary picture (sixth pass, EMOTION_MODEL_CARD.md). This curve keeps the slope
    (1 - |y|^KNEE)^(1 + 1/KNEE): 0.95 at +-0.6, 0.70 at +-0.8, and bends only near the ends; near the origin it
    is tanh (ordinary footage reads the same: +-0.31 against +-0.30 at the quartiles)."""
    return x / (1.0 + abs(x) ** KNEE) ** (1.0 / KNEE)


def picture_va(brightness: float, saturation: float, colourfulness: float, warmth: float,
               motion: float, motion_lag: float, cut_rate: float, cal: Calibration | None = None,
               shift: np.ndarray | None = None) -> tuple[float, float]:
    """Valence/arousal in (-1, 1) of a window's picture signals: ordinary footage (the calibration set's
    median) at the origin, one spread of ordinary variation at bounded(gain) of its axis. `shift` (StreamNorm) moves the
    origin to where this stream usually sits, in spreads."""
    cal = cal or load_calibration()
    z = standard_scores(brightness, saturation, colourfulness, warmth, motion, motion_lag, cut_rate, cal)
    if shift is not None:
        z = z - shift
    return bounded(cal.gain[0] * float(z[0])), bounded(cal.gain[1] * float(z[1]))


class StreamNorm:
    """Adaptive per-stream centre with a prior: where this stream's picture usually sits, shrunk towards
    the calibrated centre (0) and bounded.

    The stream's mean standardised (pleasure, arousal) is followed with exponential forgetting over
    `horizon_s` of media time, so its evidence saturates at ~horizon_s seconds. The prior is worth `prior_s`
    seconds of ordinary footage at the calibrated centre, so the shift is evidence / (evidence + prior_s)
    of the stream's mean (at most horizon_s / (horizon_s + prior_s)), and never more than `max_shift`
    spreads. Each window's scores are clipped to +-2 spreads before they count, so a short, strong passage
    barely moves the centre, while a stream that stays a little dark or busy for minutes drifts towards
    neutral and its changes move the music. Bounded, so a stream that is very dark stays darker than an
    ordinary one, and short clips (the directional checks) are almost untouched.
    """

    def __init__(self, horizon_s: float, prior_s: float, max_shift: float):
        self.horizon_s, self.prior_s, self.max_shift = horizon_s, prior_s, max_shift
        self.mean = np.zeros(2)
        self.evidence = 0.0  # seconds, forgetting included

    def shift(self) -> np.ndarray:
        if self.horizon_s <= 0 or self.evidence <= 0:
            return np.zeros(2)
        k = self.evidence / (self.evidence + self.prior_s)
        return np.clip(k * self.mean, -self.max_shift, self.max_shift)

    def update(self, z: np.ndarray, dt: float) -> None:
        if self.horizon_s <= 0 or dt <= 0:
            return
        keep = math.exp(-dt / self.horizon_s) * self.evidence
        self.mean = (keep * self.mean + dt * np.clip(z, -2.0, 2.0)) / (keep + dt)
        self.evidence = keep + dt

