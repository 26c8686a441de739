"""Picture affect: per-frame colour and motion features, and their published mapping to valence/arousal.

Features (per frame, on a small copy of the analysis frame; the statistics do not need detail):
- brightness: mean luma (Rec. 601) in [0, 1]
- saturation: mean HSV saturation in [0, 1]
- colourfulness: Hasler & Süsstrunk (2003), "Measuring colourfulness in natural images",
  C = sigma_rgyb + 0.3 * mu_rgyb on the opponent axes rg = R - G, yb = (R + G)/2 - B, here / 255
- warmth: (mean R - mean B) / 255 in [-1, 1]
- motion: mean absolute luma difference to the previous frame, per 1/30 s (so dropped frames and other
  frame rates give comparable numbers); 0 for a held still frame

Mapping to the affect plane:
- Valdez & Mehrabian (1994), "Effects of color on emotions", J. Exp. Psychol. General 123(4): over
  standardised brightness (B) and saturation (S), pleasure = .69 B + .22 S and arousal = -.31 B + .60 S.
- Hanjalic & Xu (2005), "Affective video content representation and modeling", IEEE Trans. Multimedia
  7(1): arousal rises with motion activity and with the shot-cut rate (short shots), each a monotonic
  component of a weighted sum, smoothed over time.
The standardising constants (typical values of footage) are ours: they centre an average-looking frame
at the origin. Colourfulness joins saturation (both measure chroma) and warmth leans arousal a little
(warm hues are the more arousing in Valdez & Mehrabian, though that effect is weaker than saturation's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FEATURES = ("brightness", "saturation", "colourfulness", "warmth", "motion")

# Typical footage: (mean, spread) used to standardise each feature before the published weights.
NORM = {
    "brightness": (0.42, 0.15),
    "saturation": (0.30, 0.12),
    "colourfulness": (0.13, 0.08),
    "warmth": (0.03, 0.10),
    "motion": (0.02, 0.02),  # mean |dY| per 1/30 s, luma in [0, 1]
    "cut_rate": (0.25, 0.3),  # cuts per second; a shot every 4 s is ordinary editing
}


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
    d = float(np.abs(y - prev_y).mean())
    return d * (1.0 / 30.0) / max(dt, 1.0 / 120.0)


@dataclass(slots=True)
class FrameAffect:
    t: float
    brightness: float
    saturation: float
    colourfulness: float
    warmth: float
    motion: float

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, k) for k in FEATURES], dtype=np.float32)


def z(name: str, value: float) -> float:
    mean, spread = NORM[name]
    return (value - mean) / spread


def picture_va(brightness: float, saturation: float, colourfulness: float, warmth: float,
               motion: float, cut_rate: float) -> tuple[float, float]:
    """Valence/arousal in (-1, 1) of a window's mean picture features (see the module docstring)."""
    zb = z("brightness", brightness)
    zs = 0.5 * (z("saturation", saturation) + z("colourfulness", colourfulness))  # chroma
    pleasure = 0.69 * zb + 0.22 * zs  # Valdez & Mehrabian 1994
    colour_arousal = -0.31 * zb + 0.60 * zs + 0.15 * z("warmth", warmth)  # Valdez & Mehrabian 1994
    # Hanjalic & Xu 2005: motion activity and cut rate, each saturating (a monotonic squash per component)
    motion_arousal = math.tanh(z("motion", motion) / 2.0) * 2.0
    cut_arousal = math.tanh(z("cut_rate", cut_rate) / 2.0) * 2.0
    arousal = 0.35 * colour_arousal + 0.40 * motion_arousal + 0.25 * cut_arousal
    return math.tanh(pleasure / 1.5), math.tanh(arousal / 1.0)
