"""The small data types that cross stage boundaries.

Every stage (streams, models, engine) may import this module; it imports nothing of the project.
All times are media seconds: presentation time of the input, measured from its first frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

EKMAN6: tuple[str, ...] = ("anger", "disgust", "fear", "joy", "sadness", "surprise")

# Instruments every generator writes. The config maps each to a MIDI channel and GM program.
INSTRUMENTS: tuple[str, ...] = ("drums", "bass", "chords", "melody", "pad")


@dataclass(slots=True)
class Frame:
    """One decoded video frame, downscaled to the analysis size."""

    t: float  # media seconds from the first frame (pts * time_base - first pts)
    index: int  # decode order, counting from 0; gaps in t (dropped frames) are not gaps here
    image: np.ndarray  # H x W x 3 uint8 RGB at analysis size, display aspect ratio applied
    source_size: tuple[int, int] = (0, 0)  # (width, height) as displayed, before downscaling


@dataclass(slots=True)
class AudioChunk:
    """Decoded audio of the input, mono float32 in [-1, 1]."""

    t: float  # media seconds of the first sample
    samples: np.ndarray
    rate: int


@dataclass(slots=True)
class Boundary:
    """A scene boundary the music should hit.

    kind: "hard" (instant cut), "fade" (to or from black), "dissolve", or "hint" (announced from outside).
    For gradual transitions `start`/`end` span the transition and `t` is where the music lands (the start).
    """

    t: float
    kind: str = "hard"
    start: float | None = None
    end: float | None = None
    decided_at: float | None = None  # media time of the frame at which the detector decided
    source: str = "detector"  # "detector", "mqtt", "osc", "obs", "forecast", ...
    confidence: float = 1.0

    def to_json(self) -> dict:
        d = {"t": round(self.t, 4), "kind": self.kind, "source": self.source}
        if self.start is not None:
            d["start"] = round(self.start, 4)
        if self.end is not None:
            d["end"] = round(self.end, 4)
        if self.decided_at is not None:
            d["decided_at"] = round(self.decided_at, 4)
        if self.confidence != 1.0:
            d["confidence"] = round(self.confidence, 4)
        return d


@dataclass(slots=True)
class Forecast:
    """Hazard of the next cut after media time `t`: hazard[i] is P(cut in bin i | none before)."""

    t: float
    bin_s: float
    hazard: np.ndarray

    def probability_by(self, horizon: float) -> float:
        """P(a cut within `horizon` seconds of t)."""
        n = min(len(self.hazard), max(0, int(math.ceil(horizon / self.bin_s))))
        return float(1.0 - np.prod(1.0 - self.hazard[:n]))

    def most_likely(self) -> tuple[float, float]:
        """(media time, probability) of the single most likely bin for the next cut."""
        survive = np.concatenate([[1.0], np.cumprod(1.0 - self.hazard)[:-1]])
        p = survive * self.hazard
        i = int(np.argmax(p))
        return self.t + (i + 0.5) * self.bin_s, float(p[i])


@dataclass(slots=True)
class EmotionWindow:
    """Emotion of one analysis window [start, end)."""

    start: float
    end: float
    probs: tuple[float, ...]  # Ekman-6, in EKMAN6 order, summing to 1
    valence: float  # [-1, 1]
    arousal: float  # [-1, 1]
    signals: tuple[str, ...] = ()  # which signals contributed: "picture", "faces", "audio", ...

    def to_json(self) -> dict:
        return {
            "start": round(self.start, 4),
            "end": round(self.end, 4),
            "probs": {k: round(float(p), 4) for k, p in zip(EKMAN6, self.probs)},
            "valence": round(self.valence, 4),
            "arousal": round(self.arousal, 4),
            "signals": list(self.signals),
        }


@dataclass(slots=True, order=True)
class Note:
    """A note the generator produced, in media seconds. Drums use GM percussion pitches."""

    start: float
    end: float
    pitch: int
    velocity: int
    instrument: str  # one of INSTRUMENTS


@dataclass(slots=True)
class StepPlan:
    """What the conductor tells the generator for one step (one beat, or the part of a beat up to a boundary).

    The generator returns the notes that start in [t0, t1); they may sound past t1.
    """

    t0: float
    t1: float
    tempo_bpm: float
    beat: int  # beat index since the start of the piece
    beat_in_bar: int  # 0 .. beats_per_bar-1
    beats_per_bar: int
    valence: float
    arousal: float
    next_boundary: float | None = None  # media time of the next boundary at or after t0 (known or forecast)
    boundary_known: bool = True  # False when next_boundary is a forecast
    at_boundary: bool = False  # a boundary falls exactly at t0: start the boundary chord here
    boundary_kind: str = "hard"
    on_grid: bool = True  # False when t0 is a boundary that fell between beats

    @property
    def beat_s(self) -> float:
        return 60.0 / self.tempo_bpm

    def time_to_boundary(self, t: float | None = None) -> float:
        """Seconds from t (default t0) to the next boundary; inf when none is known or forecast."""
        if self.next_boundary is None:
            return math.inf
        return max(0.0, self.next_boundary - (self.t0 if t is None else t))


class Generator(Protocol):
    """A music generator driven one step at a time (see StepPlan)."""

    name: str

    def reset(self, seed: int) -> None: ...

    def step(self, plan: StepPlan) -> list[Note]: ...

    def rewind(self, t: float) -> None:
        """Forget what was generated at or after media time t (a re-plan follows)."""
        ...


@dataclass(slots=True)
class Timeline:
    """Everything the engine decided, for timeline.json and report.png."""

    duration: float = 0.0
    boundaries: list[Boundary] = field(default_factory=list)
    emotion: list[EmotionWindow] = field(default_factory=list)
    tempo: list[tuple[float, float]] = field(default_factory=list)  # (media time, bpm) at each change
    chords: list[float] = field(default_factory=list)  # chord onset times the generator reported
    forecasts: list[Forecast] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def is_chord_onset(notes: Sequence[Note], t: float, *, window: float = 0.03, min_hold: float = 0.4) -> bool:
    """True when 3+ distinct pitch classes start within `window` s after t, each held >= min_hold s."""
    pcs = {n.pitch % 12 for n in notes if n.instrument != "drums" and t <= n.start <= t + window and n.end - n.start >= min_hold}
    return len(pcs) >= 3


class NoteSink(Protocol):
    """Where the engine's notes go: a MIDI file in render, a real-time scheduler in live.

    The engine calls notes() ahead of the playhead (up to the conductor's horizon), tempo() at every tempo
    change, cut_at() when an unplanned boundary forces a re-plan, and close() exactly once at the end
    (also on error and interrupt) — after close() no note may still sound.
    """

    def tempo(self, t: float, bpm: float, beat: float) -> None:
        """From media time t the tempo is bpm, and t falls on beat number `beat` (for MIDI clock)."""
        ...

    def notes(self, notes: list[Note]) -> None: ...

    def cut_at(self, t: float) -> None:
        """Drop events not yet sent at or after t and end the notes still sounding at t."""
        ...

    def close(self) -> None: ...
