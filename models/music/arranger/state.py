"""What the arranger remembers between beats: the section it plays in and the current chord and lines."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cuecast.models.music import theory

DRUMS = theory.GM_DRUMS


@dataclass
class Section:
    """One stretch of music in one key with one progression (a new one may start at a boundary)."""

    tonic: int
    mode: str
    progression: tuple[str, ...]
    valence: float
    variant: int  # picks among pattern variants so sections sound different
    chord_bars: int = 1  # bars per chord (2 at fast tempi sometimes: a slower harmonic rhythm)
    bars: int = 0  # bars started in this section
    melody_octave: int = 0


@dataclass
class State:
    section: Section | None = None
    numeral: str = "I"
    root: int = 0
    pcs: tuple[int, ...] = (0, 4, 7)
    chord_t: float = -math.inf  # when the current chord started
    chord_bar: int = 0  # bars into the current chord
    prog_pos: int = 0
    comp_voicing: tuple[int, ...] = ()
    pad_voicing: tuple[int, ...] = ()
    bass_last: int = 40
    mel_last: int = 72
    mel_target: int = 74
    mel_until: float = -math.inf  # the melody note sounding now ends here
    motif: dict = field(default_factory=dict)  # beat in bar -> (rhythm cell, scale steps) of the phrase's first bar


def clamp(v: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, round(v))))
