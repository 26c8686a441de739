"""The event vocabulary of the music transformer, and notes <-> tokens.

EMSYNC's vocabulary is the base: note-on and note-off per instrument (drums, bass, guitar, piano, strings)
for pitches 21-108, time shifts, BAR and CHORD. cuecast changes two things:

- time shifts count twelfths of a beat (not 8 ms steps), and never cross a beat line, so the model's clock
  is the conductor's beat grid: the same tokens play at any tempo and MIDI clock can follow it;
- a velocity token (8 levels) precedes a note-on when the level changes;
- a key token (24: major or minor, on one of 12 tonics) opens a piece and each new section: the model
  chooses the key from the conditions in one decision, and the notes follow it (see windows.py). They are
  appended after EMSYNC's ids, so weights trained before them keep their meaning (`KEY0` = their vocabulary).

Drums get only note-on (a drum hit has no musical length); they are decoded with a fixed short length.
Within one tick the order is: BAR, note-offs, CHORD, then velocity/note-on, so that a CHORD token sits
right before the notes of its chord.

Notes here are in beats (quarter notes): `BeatNote(start, end, pitch, velocity, inst)`, inst indexing
`INSTS`. The cuecast instrument names map as drums->drums, bass->bass, guitar->melody, piano->chords,
strings->pad (see `TO_CUECAST`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Iterable, Sequence

import numpy as np

INSTS: tuple[str, ...] = ("drums", "bass", "guitar", "piano", "strings")
TO_CUECAST: dict[str, str] = {"drums": "drums", "bass": "bass", "guitar": "melody", "piano": "chords", "strings": "pad"}
FROM_CUECAST: dict[str, str] = {v: k for k, v in TO_CUECAST.items()}

PITCH_LO, PITCH_HI = 21, 108
N_PITCH = PITCH_HI - PITCH_LO + 1
TICKS_PER_BEAT = 12  # twelfths: sixteenths and triplets both land on the grid
MAX_SHIFT = TICKS_PER_BEAT  # a shift never crosses a beat line, so one beat is the longest
N_VEL = 8
DRUM_TICKS = 3  # decoded length of a drum hit (a sixteenth)
MAX_NOTE_BEATS = 16.0  # longer notes in the data are cut here: they are stuck notes more often than music

PAD, BOS, BAR, CHORD = 0, 1, 2, 3
SHIFT0 = 4  # SHIFT0 + k - 1 is a shift of k ticks, k in 1..MAX_SHIFT
VEL0 = SHIFT0 + MAX_SHIFT
DRUM0 = VEL0 + N_VEL
ON0 = DRUM0 + N_PITCH  # pitched instruments (bass, guitar, piano, strings): ON0 + (i-1)*2*N_PITCH + p
KEY0 = ON0 + (len(INSTS) - 1) * 2 * N_PITCH  # KEY0 + 12*mode + tonic; mode 0 major, 1 minor
N_KEYS = 24
VOCAB_SIZE = KEY0 + N_KEYS
VOCAB_BEFORE_KEYS = KEY0  # the vocabulary of weights trained before key tokens (they are a prefix of this one)


@dataclass(slots=True)
class BeatNote:
    start: float  # beats (quarter notes) from the start of the piece
    end: float
    pitch: int
    velocity: int
    inst: int  # index into INSTS


# ---- token id helpers -------------------------------------------------------------------------------

def shift_token(k: int) -> int:
    if not 1 <= k <= MAX_SHIFT:
        raise ValueError(f"time shift must be 1..{MAX_SHIFT} ticks, got {k}")
    return SHIFT0 + k - 1


def vel_token(level: int) -> int:
    return VEL0 + level


def key_token(mode: int, tonic: int) -> int:
    return KEY0 + 12 * int(mode) + int(tonic) % 12


def velocity_level(velocity: int) -> int:
    return int(min(N_VEL - 1, max(0, velocity) * N_VEL // 128))


def level_velocity(level: int) -> int:
    return int(level * 128 // N_VEL + 128 // N_VEL // 2)


def on_token(inst: int, pitch: int) -> int:
    p = pitch - PITCH_LO
    return DRUM0 + p if inst == 0 else ON0 + (inst - 1) * 2 * N_PITCH + p


def off_token(inst: int, pitch: int) -> int:
    if inst == 0:
        raise ValueError("drums have no note-off token")
    return ON0 + (inst - 1) * 2 * N_PITCH + N_PITCH + pitch - PITCH_LO


def decode(tok: int) -> tuple[str, int, int]:
    """(kind, a, b) of a token: ("shift", ticks, 0), ("vel", level, 0), ("on"/"off", inst, pitch),
    ("key", mode, tonic), ("bar"|"chord"|"bos"|"pad", 0, 0)."""
    if tok < SHIFT0:
        return (("pad", "bos", "bar", "chord")[tok], 0, 0)
    if tok < VEL0:
        return ("shift", tok - SHIFT0 + 1, 0)
    if tok < DRUM0:
        return ("vel", tok - VEL0, 0)
    if tok < ON0:
        return ("on", 0, tok - DRUM0 + PITCH_LO)
    if KEY0 <= tok < VOCAB_SIZE:
        return ("key", (tok - KEY0) // 12, (tok - KEY0) % 12)
    if ON0 <= tok < KEY0:
        r = tok - ON0
        inst, r = 1 + r // (2 * N_PITCH), r % (2 * N_PITCH)
        return ("on" if r < N_PITCH else "off", inst, PITCH_LO + r % N_PITCH)
    raise ValueError(f"token {tok} outside the vocabulary of {VOCAB_SIZE}")


class Kind(IntEnum):
    """What a token is (the values of `KIND`)."""

    SPECIAL = 0  # PAD, BOS, BAR, CHORD
    SHIFT = 1
    VEL = 2
    ON = 3
    OFF = 4
    KEY = 5


# Tables for fast masks in sampling.
KIND = np.zeros(VOCAB_SIZE, dtype=np.int8)  # Kind of every token
TOK_INST = np.full(VOCAB_SIZE, -1, dtype=np.int8)
TOK_PITCH = np.full(VOCAB_SIZE, -1, dtype=np.int16)
for _t in range(VOCAB_SIZE):
    _k, _a, _b = decode(_t)
    KIND[_t] = {"shift": Kind.SHIFT, "vel": Kind.VEL, "on": Kind.ON, "off": Kind.OFF, "key": Kind.KEY}.get(_k, Kind.SPECIAL)
    if _k in ("on", "off"):
        TOK_INST[_t], TOK_PITCH[_t] = _a, _b
PITCHED_ON = (KIND == Kind.ON) & (TOK_INST > 0)  # note-ons of the pitched instruments (not drums)


# ---- notes -> tokens --------------------------------------------------------------------------------

def quantize(notes: Iterable[BeatNote]) -> list[tuple[int, int, int, int, int]]:
    """Notes on the tick grid as (start, end, pitch, velocity, inst); overlapping repeats of one pitch
    on one instrument are cut at the next onset (MIDI cannot hold one key twice)."""
    q = []
    max_len = int(MAX_NOTE_BEATS * TICKS_PER_BEAT)
    for n in notes:
        if not PITCH_LO <= n.pitch <= PITCH_HI or n.velocity <= 0:
            continue
        s = int(round(n.start * TICKS_PER_BEAT))
        e = s + DRUM_TICKS if n.inst == 0 else int(round(n.end * TICKS_PER_BEAT))
        q.append((s, min(max(e, s + 1), s + max_len), n.pitch, n.velocity, n.inst))
    q.sort()
    last: dict[tuple[int, int], int] = {}
    for i, (s, e, p, v, ins) in enumerate(q):
        j = last.get((ins, p))
        if j is not None and q[j][1] > s:
            js, je, jp, jv, ji = q[j]
            q[j] = (js, max(js + 1, s) if s > js else js, jp, jv, ji)
        last[(ins, p)] = i
    return [n for n in q if n[1] > n[0]]


def chord_ticks(qnotes: Sequence[tuple[int, int, int, int, int]], min_ticks: int) -> set[int]:
    """Ticks where 3+ distinct pitch classes (not drums) start together and are held >= min_ticks:
    the data's own chords, EMSYNC's boundary targets."""
    by_tick: dict[int, set[int]] = {}
    for s, e, p, v, ins in qnotes:
        if ins != 0 and e - s >= min_ticks:
            by_tick.setdefault(s, set()).add(p % 12)
    return {t for t, pcs in by_tick.items() if len(pcs) >= 3}


def encode(notes: Iterable[BeatNote], bar_beats: Sequence[float] = (), chord_min_beats: float = 2.0,
           chords: set[int] | None = None) -> tuple[list[int], list[int]]:
    """Tokens of a piece and the tick at which each token happens.

    bar_beats: beat positions of bar lines (BAR tokens). chords: ticks that get a CHORD token (default:
    `chord_ticks` with `chord_min_beats`)."""
    qn = quantize(notes)
    if chords is None:
        chords = chord_ticks(qn, int(round(chord_min_beats * TICKS_PER_BEAT)))
    events: dict[int, list[tuple[int, int]]] = {}  # tick -> (order, token) ; order sorts within a tick

    def add(t: int, order: int, tok: int) -> None:
        events.setdefault(t, []).append((order, tok))

    end_tick = 0
    for s, e, p, v, ins in qn:
        add(s, 3, (v, on_token(ins, p)))  # type: ignore[arg-type]
        if ins != 0:
            add(e, 1, off_token(ins, p))
        end_tick = max(end_tick, e)
    for b in bar_beats:
        t = int(round(b * TICKS_PER_BEAT))
        if 0 <= t <= end_tick:
            add(t, 0, BAR)
    for t in chords:
        add(t, 2, CHORD)
    toks: list[int] = []
    ticks: list[int] = []
    clock, level = 0, -1
    for t in sorted(events):
        while clock < t:  # split at beat lines: the clock lands on every beat it passes
            step = min(t - clock, TICKS_PER_BEAT - clock % TICKS_PER_BEAT)
            clock += step
            toks.append(shift_token(step))
            ticks.append(clock)
        for order, tok in sorted(events[t], key=lambda x: (x[0], x[1] if isinstance(x[1], int) else x[1][1])):
            if order == 3:
                v, tok = tok  # type: ignore[misc]
                lv = velocity_level(v)
                if lv != level:
                    toks.append(vel_token(lv))
                    ticks.append(t)
                    level = lv
            toks.append(tok)
            ticks.append(t)
    return toks, ticks


# ---- tokens -> notes --------------------------------------------------------------------------------

def to_notes(tokens: Iterable[int], start_tick: int = 0) -> list[BeatNote]:
    """Notes of a token sequence (BOS/PAD ignored); notes never closed end at the last tick."""
    clock, level = start_tick, 4
    open_: dict[tuple[int, int], tuple[int, int]] = {}
    out: list[BeatNote] = []
    for tok in tokens:
        kind, a, b = decode(int(tok))
        if kind == "shift":
            clock += a
        elif kind == "vel":
            level = a
        elif kind == "on":
            vel = level_velocity(level)
            if a == 0:
                out.append(BeatNote(clock / TICKS_PER_BEAT, (clock + DRUM_TICKS) / TICKS_PER_BEAT, b, vel, 0))
            else:
                if (a, b) in open_:
                    s, v = open_.pop((a, b))
                    out.append(BeatNote(s / TICKS_PER_BEAT, clock / TICKS_PER_BEAT, b, v, a))
                open_[(a, b)] = (clock, vel)
        elif kind == "off" and (a, b) in open_:
            s, v = open_.pop((a, b))
            if clock > s:
                out.append(BeatNote(s / TICKS_PER_BEAT, clock / TICKS_PER_BEAT, b, v, a))
    for (a, b), (s, v) in open_.items():
        out.append(BeatNote(s / TICKS_PER_BEAT, max(clock, s + 1) / TICKS_PER_BEAT, b, v, a))
    out.sort(key=lambda n: (n.start, n.inst, n.pitch))
    return out
