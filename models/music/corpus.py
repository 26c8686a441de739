"""Reading music into `Piece`s and computing the training labels, as EMSYNC's released code does.

A piece is notes in beats (quarter notes) on the five transformer instruments, its bar lines, and a tempo
map (beats -> seconds). Labels are computed from the music itself:
- valence from mode/harmony: the major-minor key score (Krumhansl-Kessler profiles) of the pitch-class
  histogram in a window around each token;
- arousal from note density (onsets per second) and, a little, from velocity, in a window around it;
- boundary targets: the data's own chords (3+ pitch classes starting together, held about two beats),
  marked by CHORD tokens; every token gets the seconds to the next one (clamped to [0, 8]).
Raw label values are mapped to [-1, 1] by their rank in the training corpus (quantile tables kept with
the corpus), so the model's inputs spread evenly over the range the conductor asks for.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cuecast.models.music import theory
from cuecast.models.music import tokens as T

OFFSET_MAX = 8.0  # seconds, EMSYNC's clamp of the boundary offset
VALENCE_WINDOW = 8.0  # seconds either side of a token for its key score
AROUSAL_WINDOW = 4.0  # seconds either side of a token for its note density


@dataclass
class Piece:
    name: str
    source: str
    notes: list[T.BeatNote]
    bars: list[float] = field(default_factory=list)  # beat positions of bar lines
    tempo: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 120.0)])  # (beat, bpm)

    def seconds(self, beats: np.ndarray) -> np.ndarray:
        """Media seconds of beat positions, through the tempo map."""
        starts = np.array([b for b, _ in self.tempo])
        bpm = np.array([q for _, q in self.tempo])
        sec_at = np.concatenate([[0.0], np.cumsum(np.diff(starts) * 60.0 / bpm[:-1])]) - starts[0] * 60.0 / bpm[0]
        i = np.clip(np.searchsorted(starts, beats, side="right") - 1, 0, len(starts) - 1)
        return sec_at[i] + (beats - starts[i]) * 60.0 / bpm[i]

    def instruments(self) -> list[str]:
        return sorted({T.INSTS[n.inst] for n in self.notes})


# ---- reading MIDI -----------------------------------------------------------------------------------

def gm_instrument(program: int, is_drum: bool) -> int | None:
    """EMSYNC's five instruments from a General MIDI program; None drops the track (sound effects)."""
    if is_drum:
        return 0
    if 32 <= program <= 39:
        return 1  # bass
    if 24 <= program <= 31 or 56 <= program <= 87 or 104 <= program <= 111:
        return 2  # guitar: guitars, brass, reeds, pipes, leads, ethnic -> the melody voice
    if program <= 23:
        return 3  # piano, chromatic percussion, organ
    if 40 <= program <= 55 or 88 <= program <= 103:
        return 4  # strings, ensembles, pads
    return None  # percussive 112-119, sound effects 120-127


def read_midi(path: str | Path, source: str = "midi") -> Piece:
    """A Piece from a MIDI file (raises on a broken file)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(path))
    res = float(pm.resolution)

    def beats(sec: float) -> float:
        return pm.time_to_tick(sec) / res

    notes = []
    for ins in pm.instruments:
        k = gm_instrument(ins.program, ins.is_drum)
        if k is None:
            continue
        for n in ins.notes:
            notes.append(T.BeatNote(beats(n.start), beats(n.end), n.pitch, n.velocity, k))
    if not notes:
        raise ValueError("no notes")
    times, bpms = pm.get_tempo_changes()
    tempo = [(beats(float(t)), float(b)) for t, b in zip(times, bpms)] or [(0.0, 120.0)]
    tempo[0] = (0.0, tempo[0][1])
    end = max(n.end for n in notes)
    bars: list[float] = []
    sigs = sorted(pm.time_signature_changes, key=lambda s: s.time) or None
    if sigs is None:
        bars = list(np.arange(0.0, end + 1e-6, 4.0))
    else:
        for i, ts in enumerate(sigs):
            b0 = beats(ts.time) if i else 0.0
            b1 = beats(sigs[i + 1].time) if i + 1 < len(sigs) else end
            bar_len = ts.numerator * 4.0 / ts.denominator
            bars.extend(np.arange(b0, b1 - 1e-6, bar_len) if bar_len > 0 else [])
    return Piece(Path(path).stem, source, notes, [float(b) for b in bars], tempo)


# ---- reading music21 scores -------------------------------------------------------------------------

def read_music21(score, name: str, source: str, tempo_bpm: float = 100.0) -> Piece:
    """A Piece from a music21 Score: top part -> guitar (melody), lowest -> bass, inner parts -> strings,
    chord symbols (folk tunes) realised as piano chords with the root in the bass."""
    from music21 import harmony, tempo as m21tempo

    parts = list(score.parts) or [score]
    notes: list[T.BeatNote] = []
    for i, part in enumerate(parts):
        inst = 2 if i == 0 else (1 if i == len(parts) - 1 else 4)
        flat = part.stripTies().flatten()
        symbols = [c for c in flat.getElementsByClass(harmony.ChordSymbol)]
        for n in flat.notes:
            if isinstance(n, harmony.ChordSymbol):
                continue
            s, d = float(n.offset), float(n.quarterLength)
            if d <= 0:
                continue
            vel = n.volume.velocity or (88 if inst == 2 else 72)
            for p in n.pitches:
                notes.append(T.BeatNote(s, s + d, int(p.midi), int(vel), inst))
        if symbols:
            notes.extend(_realise_symbols(symbols, flat.highestTime))
    if not notes:
        raise ValueError("no notes")
    marks = score.flatten().getElementsByClass(m21tempo.MetronomeMark)
    bpm = next((float(m.getQuarterBPM()) for m in marks if m.getQuarterBPM()), tempo_bpm)
    measures = parts[0].getElementsByClass("Measure")
    bars = [float(m.offset) for m in measures] or list(np.arange(0.0, max(n.end for n in notes), 4.0))
    return Piece(name, source, notes, bars, [(0.0, bpm)])


def _realise_symbols(symbols, end: float) -> list[T.BeatNote]:
    """Chord symbols held until the next one: close-position piano chord around C4 and the root as bass."""
    out = []
    for i, cs in enumerate(symbols):
        s = float(cs.offset)
        e = float(symbols[i + 1].offset) if i + 1 < len(symbols) else float(end)
        if e <= s or not cs.pitches:
            continue
        root = cs.root().midi % 12
        for p in cs.pitches:
            out.append(T.BeatNote(s, e, 55 + (p.midi - 55) % 12, 64, 3))
        out.append(T.BeatNote(s, e, 36 + root, 76, 1))
    return out


# ---- labels -----------------------------------------------------------------------------------------

def major_minor_score(hist: np.ndarray) -> float:
    """Best major-key minus best minor-key correlation of a pitch-class histogram (0 when empty)."""
    major, minor = theory.key_correlations(hist)
    return float(major.max() - minor.max())


def raw_labels(piece: Piece, tok_sec: np.ndarray, step: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Raw (valence, arousal) for every token time: key score and log density/velocity in windows."""
    if not piece.notes:
        z = np.zeros(len(tok_sec))
        return z, z
    st = piece.seconds(np.array([n.start for n in piece.notes]))
    en = piece.seconds(np.array([n.end for n in piece.notes]))
    pc = np.array([n.pitch % 12 for n in piece.notes])
    vel = np.array([n.velocity for n in piece.notes], dtype=float)
    pitched = np.array([n.inst != 0 for n in piece.notes])
    grid = np.arange(0.0, max(float(tok_sec.max()) if len(tok_sec) else 0.0, 0.0) + step, step)
    val, aro = np.zeros(len(grid)), np.zeros(len(grid))
    for g, t in enumerate(grid):
        lo, hi = t - VALENCE_WINDOW, t + VALENCE_WINDOW
        overlap = np.clip(np.minimum(en, hi) - np.maximum(st, lo), 0, None) * pitched
        val[g] = major_minor_score(np.bincount(pc, weights=overlap, minlength=12))
        inw = (st >= t - AROUSAL_WINDOW) & (st < t + AROUSAL_WINDOW)
        dens = inw.sum() / (2 * AROUSAL_WINDOW)
        v = vel[inw].mean() / 127.0 if inw.any() else 0.0
        aro[g] = math.log1p(dens) + 0.5 * v  # density dominates, as EMSYNC; velocity nudges
    idx = np.clip(np.round(tok_sec / step).astype(int), 0, len(grid) - 1)
    return val[idx], aro[idx]


def boundary_offsets(toks: np.ndarray, tok_sec: np.ndarray) -> np.ndarray:
    """Seconds from each token to the next CHORD token after it, clamped to [0, 8]; NaN when none."""
    out = np.full(len(toks), np.nan, dtype=np.float32)
    nxt = math.nan
    for i in range(len(toks) - 1, -1, -1):
        out[i] = nxt - tok_sec[i] if not math.isnan(nxt) else np.nan
        if toks[i] == T.CHORD:
            nxt = tok_sec[i]
    return np.clip(out, 0.0, OFFSET_MAX)


def quantile_table(values: np.ndarray, n: int = 101) -> np.ndarray:
    return np.quantile(values, np.linspace(0, 1, n)).astype(np.float64)


def to_unit(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Raw label -> [-1, 1] by its rank in the corpus (piecewise linear through the quantile table)."""
    r = np.interp(values, table, np.linspace(0, 1, len(table)))
    return (2 * r - 1).astype(np.float32)


def tokenize_piece(piece: Piece, chord_min_beats: float = 2.0) -> dict[str, np.ndarray]:
    """Tokens of a piece with their seconds, raw labels and boundary offsets."""
    toks, ticks = T.encode(piece.notes, piece.bars, chord_min_beats=chord_min_beats)
    toks_a = np.array(toks, dtype=np.int16)
    sec = piece.seconds(np.array(ticks, dtype=float) / T.TICKS_PER_BEAT)
    # the clock-held chord must also be held about 0.4 s (EMSYNC's 2 beats at very fast tempi is less)
    val, aro = raw_labels(piece, sec)
    return {"tokens": toks_a, "sec": sec.astype(np.float32), "val_raw": val.astype(np.float32),
            "aro_raw": aro.astype(np.float32), "offset": boundary_offsets(toks_a, sec)}


def split_of(name: str, seed: int, heldout: float) -> str:
    """'train' or 'heldout', fixed by the seed and the piece's name (stable when the corpus grows)."""
    import zlib

    h = zlib.crc32(f"{seed}:{name}".encode()) / 2**32
    return "heldout" if h < heldout else "train"


__all__ = ["Piece", "read_midi", "read_music21", "tokenize_piece", "raw_labels", "boundary_offsets",
           "quantile_table", "to_unit", "major_minor_score", "split_of", "gm_instrument", "bisect"]
