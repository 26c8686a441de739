"""Ekman-6 probabilities -> valence/arousal, EMSYNC's mapping (see DESIGN.md).

EMSYNC takes the per-emotion means of Russell & Mehrabian (1977), rescales each axis of the six means
linearly to [-0.8, 0.8], and returns the probability-weighted mean. The inverse direction
(`probs_from_va`) is ours: it turns a point on the valence/arousal plane (what the picture affect gives)
into a distribution over the six emotions, a softmax of the negative squared distance to each emotion's
point, so that the picture can vote among the same six classes as the faces.
"""

from __future__ import annotations

import numpy as np

from cuecast.types import EKMAN6

# Russell & Mehrabian (1977) as tabulated by EMSYNC: (valence mean, valence sd, arousal mean, arousal sd)
RUSSELL_MEHRABIAN = {
    "anger": (-0.51, 0.20, 0.59, 0.29),
    "disgust": (-0.60, 0.20, 0.35, 0.41),
    "fear": (-0.64, 0.20, 0.60, 0.32),
    "joy": (0.76, 0.22, 0.48, 0.26),
    "sadness": (-0.63, 0.23, -0.27, 0.34),
    "surprise": (0.40, 0.30, 0.67, 0.27),
}


def _rescale(x: np.ndarray, lo: float = -0.8, hi: float = 0.8) -> np.ndarray:
    return lo + (x - x.min()) * (hi - lo) / (x.max() - x.min())


# (6, 2): each emotion's (valence, arousal) after EMSYNC's per-axis rescaling to [-0.8, 0.8]
EMOTION_VA = np.stack([
    _rescale(np.array([RUSSELL_MEHRABIAN[e][0] for e in EKMAN6])),
    _rescale(np.array([RUSSELL_MEHRABIAN[e][2] for e in EKMAN6])),
], axis=1)


def va_from_probs(probs) -> tuple[float, float]:
    """Probability-weighted mean of the rescaled per-emotion (valence, arousal): EMSYNC's mapping."""
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (6,) or not np.all(np.isfinite(p)) or p.min() < 0 or p.sum() <= 0:
        raise ValueError(f"va_from_probs needs 6 non-negative probabilities in EKMAN6 order (got {probs!r})")
    v, a = (p / p.sum()) @ EMOTION_VA
    return float(v), float(a)


def probs_from_va(valence: float, arousal: float, temperature: float = 0.15) -> np.ndarray:
    """A distribution over EKMAN6 peaked at the emotions nearest to (valence, arousal); sums to 1."""
    d2 = np.sum((EMOTION_VA - np.array([valence, arousal])) ** 2, axis=1)
    z = -d2 / temperature
    e = np.exp(z - z.max())
    return e / e.sum()
