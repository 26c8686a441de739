"""Objective measures of generated music, pure functions over lists of cuecast.types.Note.

Drum notes (instrument "drums") are left out of everything pitch-based. To measure a MIDI file, read it
with cuecast.streams.midi_file.read_midi_notes (file I/O lives in streams/, not in the models).
"""

from __future__ import annotations

import bisect
import math
import random
from typing import Iterable, Sequence

import numpy as np

from cuecast.models.music import theory
from cuecast.types import INSTRUMENTS, Note, is_chord_onset

NotesLike = Sequence[Note]  # MIDI files: read them with cuecast.streams.midi_file.read_midi_notes


def _notes(x: NotesLike) -> list[Note]:
    return list(x)


def _pitched(notes: Iterable[Note]) -> list[Note]:
    return [n for n in notes if n.instrument != "drums"]


def _end(ns: Sequence[Note]) -> float:
    return max((n.end for n in ns), default=0.0)


def duration(notes: NotesLike) -> float:
    """Seconds from 0 to the end of the last note (0 for no notes)."""
    return _end(_notes(notes))


def chord_onsets(notes: NotesLike, window: float = 0.03, min_hold: float = 0.4) -> list[float]:
    """Times where 3+ distinct pitch classes (non-drum) start within `window` s, each held >= `min_hold` s.

    Uses cuecast.types.is_chord_onset as the definition; candidates are the starts of long notes, and a
    run of qualifying starts within one window counts once (at its first start).
    """
    long = sorted((n for n in _pitched(_notes(notes)) if n.end - n.start >= min_hold), key=lambda n: n.start)
    starts = [n.start for n in long]
    out: list[float] = []
    for i, t in enumerate(starts):
        if out and t - out[-1] <= window:
            continue
        j = bisect.bisect_right(starts, t + window + 1e-9)
        if is_chord_onset(long[i:j], t, window=window, min_hold=min_hold):
            out.append(t)
    return out


def _near(sorted_times: Sequence[float], t: float, tol: float) -> bool:
    i = bisect.bisect_left(sorted_times, t - tol - 1e-9)
    return i < len(sorted_times) and sorted_times[i] <= t + tol + 1e-9


def random_moments(cuts: Sequence[float], dur: float, n: int = 200, min_gap: float = 0.5, seed: int = 0) -> list[float]:
    """`n` uniform random times in [0, dur] that are at least `min_gap` s from every cut (fewer if none fit)."""
    rng = random.Random(seed)
    cs = sorted(cuts)
    out: list[float] = []
    for _ in range(n * 50):
        if len(out) >= n or dur <= 0:
            break
        t = rng.uniform(0.0, dur)
        if not _near(cs, t, min_gap - 1e-9):
            out.append(t)
    return out


def cut_alignment(notes: NotesLike, cuts: Sequence[float], duration: float | None = None, tol: float = 0.1,
                  n_random: int = 200, min_gap: float = 0.5, seed: int = 0, window: float = 0.03,
                  min_hold: float = 0.4) -> dict:
    """How well chord onsets hit the cuts, against how often they are near any random moment.

    hit_rate: fraction of cuts with a chord onset within +-tol. random_rate: the same for random moments
    at least min_gap s away from every cut (a generator that puts chords everywhere scores high on both).
    Also: offsets (onset - cut, for the nearest onset of each cut; None when none within 1 s), counts.
    """
    ns = _notes(notes)
    dur = _end(ns) if duration is None else float(duration)
    onsets = chord_onsets(ns, window=window, min_hold=min_hold)
    cs = sorted(float(c) for c in cuts)
    hits = [_near(onsets, c, tol) for c in cs]
    offsets: list[float | None] = []
    for c in cs:
        i = bisect.bisect_left(onsets, c)
        near = [onsets[k] - c for k in (i - 1, i) if 0 <= k < len(onsets)]
        best = min(near, key=abs, default=None)
        offsets.append(None if best is None or abs(best) > 1.0 else round(best, 4))
    rand = random_moments(cs, dur, n_random, min_gap, seed)
    rhits = sum(_near(onsets, t, tol) for t in rand)
    return {
        "hit_rate": (sum(hits) / len(cs)) if cs else float("nan"),
        "random_rate": (rhits / len(rand)) if rand else float("nan"),
        "n_cuts": len(cs),
        "n_hits": int(sum(hits)),
        "n_random": len(rand),
        "n_onsets": len(onsets),
        "onsets_per_minute": 60.0 * len(onsets) / dur if dur > 0 else 0.0,
        "offsets": offsets,
    }


def pc_histogram(notes: NotesLike, weight: str = "duration") -> np.ndarray:
    """12-bin pitch-class histogram of the non-drum notes, weighted by duration (default) or count."""
    if weight not in ("duration", "count"):
        raise ValueError("weight must be 'duration' or 'count'")
    ns = _pitched(_notes(notes))
    return theory.pc_histogram([(n.pitch, (n.end - n.start) if weight == "duration" else 1.0) for n in ns])


def key_correlations(notes: NotesLike) -> tuple[float, float]:
    """(best major correlation, best minor correlation) of the duration-weighted histogram, over tonics."""
    major, minor = theory.key_correlations(pc_histogram(notes))
    return float(major.max()), float(minor.max())


def key_score(notes: NotesLike) -> float:
    """Major-ness in [-1, 1]: best major KK correlation minus best minor one (0 for no pitched notes)."""
    ma, mi = key_correlations(notes)
    return float(np.clip(ma - mi, -1.0, 1.0))


def best_key(notes: NotesLike) -> tuple[int, str, float]:
    """(tonic pc, 'major'/'minor', correlation) of the best-fitting key of the notes."""
    return theory.best_key(pc_histogram(notes))


def pitch_in_scale_rate(notes: NotesLike) -> float:
    """Fraction of non-drum notes whose pitch class is in the scale of the best-fitting key.

    The best key's scale is its major or natural minor scale; harmonic minor's raised seventh is
    accepted too in a minor key. NaN for no pitched notes.
    """
    ns = _pitched(_notes(notes))
    if not ns:
        return float("nan")
    tonic, mode, _ = theory.best_key(pc_histogram(ns))
    scale = set(theory.scale_pcs(tonic, mode))
    if mode == "minor":
        scale.add((tonic + 11) % 12)
    return sum(n.pitch % 12 in scale for n in ns) / len(ns)


def pitch_class_entropy(notes: NotesLike, weight: str = "count") -> float:
    """Shannon entropy (bits, 0..log2 12) of the pitch-class distribution of the non-drum notes."""
    h = pc_histogram(notes, weight)
    if h.sum() <= 0:
        return 0.0
    p = h[h > 0] / h.sum()
    return float(-(p * np.log2(p)).sum())


def notes_per_second(notes: NotesLike, duration: float | None = None, include_drums: bool = True) -> float:
    """Note onsets per second over `duration` (default: up to the end of the last note)."""
    ns = _notes(notes)
    dur = _end(ns) if duration is None else float(duration)
    if not include_drums:
        ns = _pitched(ns)
    return len(ns) / dur if dur > 0 else 0.0


def beat_times(tempo_bpm: float, dur: float, start: float = 0.0) -> list[float]:
    """Beat starts of a constant tempo from `start` up to `dur`."""
    if tempo_bpm <= 0:
        raise ValueError("tempo_bpm must be > 0")
    step = 60.0 / tempo_bpm
    n = int(math.floor((dur - start) / step + 1e-9))
    return [start + i * step for i in range(max(0, n))]


def empty_beat_rate(notes: NotesLike, tempo_bpm: float | None = None, beats: Sequence[float] | None = None,
                    duration: float | None = None, sounding: bool = False) -> float:
    """Fraction of beats in which no note starts (MusPy's definition), or none sounds with sounding=True.

    Beats come from `beats` (their start times; the last one lasts as long as the one before it) or
    from a constant `tempo_bpm` starting at 0. Drums count as notes.
    """
    ns = _notes(notes)
    dur = _end(ns) if duration is None else float(duration)
    if beats is None:
        if tempo_bpm is None:
            raise ValueError("empty_beat_rate needs tempo_bpm or beats")
        beats = beat_times(tempo_bpm, dur)
    bs = sorted(beats)
    if not bs:
        return float("nan")
    last = bs[-1] - bs[-2] if len(bs) > 1 else (60.0 / tempo_bpm if tempo_bpm else 1.0)
    ends = list(bs[1:]) + [bs[-1] + last]
    empty = 0
    starts = sorted(n.start for n in ns)
    for b0, b1 in zip(bs, ends):
        if sounding:
            busy = any(n.start < b1 and n.end > b0 for n in ns)
        else:
            i = bisect.bisect_left(starts, b0)
            busy = i < len(starts) and starts[i] < b1
        empty += not busy
    return empty / len(bs)


def polyphony(notes: NotesLike) -> float:
    """Mean number of non-drum notes sounding at once, over the time at least one sounds (0 if none)."""
    ns = _pitched(_notes(notes))
    events = sorted([(n.start, 1) for n in ns] + [(n.end, -1) for n in ns])
    active, prev, area, busy = 0, None, 0.0, 0.0
    for t, d in events:
        if prev is not None and active > 0:
            area += active * (t - prev)
            busy += t - prev
        active += d
        prev = t
    return area / busy if busy > 0 else 0.0


def invalid_notes(notes: NotesLike) -> list[Note]:
    """Notes a sink cannot play: pitch or velocity out of MIDI range, end <= start, unknown instrument."""
    return [n for n in _notes(notes) if not (0 <= n.pitch <= 127 and 1 <= n.velocity <= 127 and n.end > n.start
                                             and n.instrument in INSTRUMENTS and n.start >= 0)]


def summary(notes: NotesLike, tempo_bpm: float | None = None) -> dict:
    """All the scalar metrics of one piece, for tables."""
    ns = _notes(notes)
    out = {
        "duration": duration(ns),
        "notes": len(ns),
        "notes_per_second": notes_per_second(ns),
        "key_score": key_score(ns),
        "pitch_in_scale_rate": pitch_in_scale_rate(ns),
        "pitch_class_entropy": pitch_class_entropy(ns),
        "polyphony": polyphony(ns),
        "chord_onsets": len(chord_onsets(ns)),
    }
    if tempo_bpm:
        out["empty_beat_rate"] = empty_beat_rate(ns, tempo_bpm)
    return out
