"""Ekman-6 probabilities <-> valence/arousal: EMSYNC's mapping, with a neutral state.

EMSYNC takes the per-emotion means of Russell & Mehrabian (1977), rescales each axis of the six means
linearly to [-0.8, 0.8], and returns the probability-weighted mean. Four of the six emotions are
negative, so that mean is biased: the uniform distribution (a classifier that knows nothing) sits at
(-0.30, +0.35), and "uncertain" would read as "unpleasant". Two changes keep uncertainty at the origin:

- The uniform distribution's point is subtracted in proportion to the distribution's uncertainty
  (1 - its total-variation distance from uniform, scaled to [0, 1]): a one-hot distribution maps exactly
  to its emotion's point as in EMSYNC, the uniform one to (0, 0), and conflicting evidence (half joy,
  half sadness) to near-zero valence.
- A neutral share n in [0, 1] beside the six (FER's seventh class for faces; weak picture evidence):
  the neutral state sits at the origin, so the point is (1 - n) times the six's point.

The inverse direction (`affect_probs`) is ours: it turns a point on the plane (what the picture affect
gives) into a distribution over the six emotions and the neutral state, a softmax of the negative squared
distance to each emotion's point and to the origin, measured in the table's spreads (AXIS_WEIGHT: an
arousal difference counts about a quarter as much as the same valence difference). Near the origin neutral wins and the six stay close to
uniform, so ordinary footage votes for no emotion in particular.
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
UNIFORM_VA = EMOTION_VA.mean(axis=0)  # where EMSYNC puts "no idea": (-0.30, +0.35)

# Distances on the plane in the table's own units. EMSYNC's rescaling stretches arousal 1.70x and valence 1.14x,
# while Russell & Mehrabian's spreads pin an emotion down about twice as tightly in valence as in arousal
# (pooled sd 0.26 against 0.54 after the rescaling). On the plain plane sadness, the only emotion with low
# arousal, was the nearest to every calm picture, pleasant or not. Each squared difference is weighed by the
# other axis's sd over its own (a Mahalanobis distance with the pooled spreads, scaled so the two weights
# multiply to 1: the neutral region keeps its area, only its shape follows the table).
_SD = [float(np.mean([RUSSELL_MEHRABIAN[e][i] for e in EKMAN6]) * 1.6 / np.ptp([RUSSELL_MEHRABIAN[e][i - 1] for e in EKMAN6]))
       for i in (1, 3)]
AXIS_WEIGHT = np.array([_SD[1] / _SD[0], _SD[0] / _SD[1]])  # (valence, arousal): ~(2.09, 0.48)


def _check(probs) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (6,) or not np.all(np.isfinite(p)) or p.min() < 0 or p.sum() <= 0:
        raise ValueError(f"va_from_probs needs 6 non-negative probabilities in EKMAN6 order (got {probs!r})")
    return p / p.sum()


def certainty(probs) -> float:
    """How far the six probabilities are from uniform: 0 for uniform, 1 for one emotion alone."""
    p = _check(probs)
    return float(np.abs(p - 1 / 6).sum() / (2 * 5 / 6))


def va_from_probs(probs, neutral: float = 0.0) -> tuple[float, float]:
    """EMSYNC's probability-weighted mean, without the uniform distribution's bias, pulled to the origin
    by the neutral share (see the module docstring)."""
    p = _check(probs)
    c = float(np.abs(p - 1 / 6).sum() / (2 * 5 / 6))
    v, a = (p @ EMOTION_VA - (1.0 - c) * UNIFORM_VA) * (1.0 - float(np.clip(neutral, 0.0, 1.0)))
    return float(v), float(a)


def affect_probs(valence: float, arousal: float, temperature: float = 0.15) -> tuple[np.ndarray, float]:
    """(Ekman-6 distribution summing to 1, neutral share) of a point on the plane.

    A softmax over the six emotions' points and the neutral origin; the six are then mixed towards
    uniform by the neutral share, so a point near the origin says "neutral" and "no emotion in
    particular" rather than naming the emotion whose point happens to lie nearest to the origin (disgust).
    """
    pts = np.vstack([EMOTION_VA, np.zeros((1, 2))])
    d2 = ((pts - np.array([valence, arousal])) ** 2) @ AXIS_WEIGHT  # in the table's units (AXIS_WEIGHT)
    z = -d2 / temperature
    e = np.exp(z - z.max())
    p7 = e / e.sum()
    neutral = float(p7[6])
    six = p7[:6] / max(float(p7[:6].sum()), 1e-300)
    return (1.0 - neutral) * six + neutral / 6.0, neutral


def probs_from_va(valence: float, arousal: float, temperature: float = 0.15) -> np.ndarray:
    """The Ekman-6 part of `affect_probs`: a distribution over EKMAN6 that sums to 1."""
    return affect_probs(valence, arousal, temperature)[0]


def top_share(probs, neutral: float) -> tuple[str, float]:
    """(name, share) of the largest of the seven shares: the six (each times 1 - neutral) and neutral."""
    p = _check(probs) * (1.0 - neutral)
    i = int(np.argmax(p))
    return ("neutral", float(neutral)) if neutral >= p[i] else (EKMAN6[i], float(p[i]))


def top_class(probs, neutral: float) -> str:
    return top_share(probs, neutral)[0]
