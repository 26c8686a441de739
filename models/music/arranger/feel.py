"""How arousal is heard in the arranger's parts: register, loudness, swing, which parts play, a crescendo
into a known cut. `x` is arousal mapped to 0..1."""

from __future__ import annotations

import random

from cuecast.models.music.arranger.state import State, clamp
from cuecast.types import StepPlan

CRESCENDO_VELOCITY = 12  # added over the bar before a known cut: the music leans into it


def uses_pad(st: State, x: float) -> bool:
    sec = st.section
    return x < 0.55 or (sec is not None and sec.variant % 3 == 0 and x < 0.8)


def uses_melody(st: State, x: float) -> bool:
    """A tune on top in most sections; the calmest ones sometimes leave the harmony alone."""
    sec = st.section
    return x >= 0.3 or (sec is not None and sec.variant % 3 != 0)


def shift(x: float) -> int:
    """Semitones the chords and melody move up (excited) or down (calm)."""
    return clamp(-4 + 8 * x, -4, 4)


def vel(rng: random.Random, x: float, offset: int = 0) -> int:
    """A velocity for the arousal, with a little human variation."""
    return clamp(40 + 60 * x + offset + rng.randint(-3, 3), 1, 127)


def mel_range(st: State, x: float) -> tuple[int, int]:
    octv = st.section.melody_octave if st.section else 0
    s = shift(x)
    return 62 + s + octv, 83 + s + octv


def swing(st: State, off: float, plan: StepPlan) -> float:
    """Where an event written at `off` beats falls: some sections swing their off-beat eighths
    (delayed to two thirds of the beat at mid arousal, a lighter lilt when busier)."""
    sec = st.section
    x = (min(1.0, max(-1.0, plan.arousal)) + 1.0) / 2.0
    if sec is None or sec.variant % 5 != 2 or not 0.3 <= x < 0.8 or plan.beat_s < 0.3:
        return off
    if abs(off - 0.5) < 1e-9:
        return 0.5 + (0.167 if x < 0.6 else 0.1)
    if abs(off - 0.75) < 1e-9 or abs(off - 0.25) < 1e-9:
        return off + 0.05
    return off


def crescendo(plan: StepPlan, t: float) -> int:
    """Velocity added on the way into a known boundary less than a bar ahead."""
    if not plan.boundary_known or plan.next_boundary is None:
        return 0
    left = plan.next_boundary - t
    bar_s = plan.beats_per_bar * plan.beat_s
    return int(CRESCENDO_VELOCITY * (1.0 - left / bar_s)) if 0 < left < bar_s else 0
