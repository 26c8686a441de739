"""Music theory as pure functions: pitch classes, modes, chords from roman numerals, voice leading,
Krumhansl-Kessler key profiles, and the emotion -> tempo/mode mappings the arranger and conductor share.

Pitch classes are ints 0..11 (C = 0); pitches are MIDI note numbers.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from itertools import combinations
from typing import Sequence

import numpy as np

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_NAME_TO_PC = {n: i for i, n in enumerate(NOTE_NAMES)} | {"Db": 1, "D#": 3, "Gb": 6, "G#": 8, "A#": 10, "Cb": 11, "E#": 5, "Fb": 4, "B#": 0}

# Scale steps in semitones above the tonic.
MODES: dict[str, tuple[int, ...]] = {
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "major": (0, 2, 4, 5, 7, 9, 11),  # ionian
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "minor": (0, 2, 3, 5, 7, 8, 10),  # natural minor, aeolian
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
}
# Modes ordered from brightest to darkest (Persichetti's brightness order, harmonic minor placed by its
# minor third and sixth); the arranger walks this list with valence.
MODES_BY_BRIGHTNESS = ("lydian", "major", "mixolydian", "dorian", "minor", "harmonic_minor", "phrygian")
MINOR_MODES = frozenset({"dorian", "minor", "harmonic_minor", "phrygian"})

# Chord qualities as semitones above the root.
QUALITIES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "aug": (0, 4, 8),
    "sus2": (0, 2, 7),
    "sus4": (0, 5, 7),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
    "m7b5": (0, 3, 6, 10),
    "add9": (0, 4, 7, 2),
    "madd9": (0, 3, 7, 2),
}

# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

GM_DRUMS = {
    "kick": 36, "side_stick": 37, "snare": 38, "clap": 39, "snare2": 40, "tom_low": 45, "tom_mid": 47,
    "tom_high": 50, "hat_closed": 42, "hat_pedal": 44, "hat_open": 46, "crash": 49, "ride": 51,
    "ride_bell": 53, "tambourine": 54, "shaker": 70, "crash2": 57,
}


def pitch_class(name_or_pitch: str | int) -> int:
    """'F#' -> 6, 'Bb' -> 10, 61 -> 1."""
    if isinstance(name_or_pitch, (int, np.integer)):
        return int(name_or_pitch) % 12
    key = name_or_pitch.strip()
    key = key[:1].upper() + key[1:]
    if key not in _NAME_TO_PC:
        raise ValueError(f"unknown note name {name_or_pitch!r}; use C, C#, Db, ..., B")
    return _NAME_TO_PC[key]


def note_name(pitch: int, octave: bool = True) -> str:
    """60 -> 'C4' (MIDI octave convention), or 'C' without the octave."""
    name = NOTE_NAMES[pitch % 12]
    return f"{name}{pitch // 12 - 1}" if octave else name


def scale_pcs(tonic: int, mode: str) -> tuple[int, ...]:
    """Pitch classes of the scale, tonic first."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    return tuple((tonic + s) % 12 for s in MODES[mode])


def scale_pitches(tonic: int, mode: str, low: int, high: int) -> list[int]:
    """All pitches of the scale in [low, high], ascending."""
    pcs = set(scale_pcs(tonic, mode))
    return [p for p in range(max(0, low), min(127, high) + 1) if p % 12 in pcs]


def diatonic_chord(tonic: int, mode: str, degree: int, size: int = 3) -> tuple[int, ...]:
    """Pitch classes of the chord stacked in thirds on scale degree `degree` (0-based), root first."""
    steps = MODES[mode]
    return tuple((tonic + steps[(degree + 2 * k) % 7]) % 12 for k in range(size))


_ROMAN = {"i": 0, "ii": 2, "iii": 4, "iv": 5, "v": 7, "vi": 9, "vii": 11}
_ROMAN_RE = re.compile(r"^(b|#)?(iii|ii|iv|i|vii|vi|v|III|II|IV|I|VII|VI|V)(°|o|\+|sus2|sus4|maj7|m7b5|7|add9)?$")


@lru_cache(maxsize=512)
def roman_chord(numeral: str, tonic: int) -> tuple[int, tuple[int, ...]]:
    """Chord of a roman numeral relative to the major scale of `tonic`: (root pc, chord pcs root first).

    Upper case is major, lower case minor; 'b'/'#' alter the root; suffixes: ° dim, + aug, 7 (dominant
    seventh on upper case, minor seventh on lower case), maj7, m7b5, sus2, sus4, add9.
    'bVI' in C is (8, (8, 0, 3)); 'ii7' is D F A C.
    """
    m = _ROMAN_RE.match(numeral)
    if not m:
        raise ValueError(f"bad roman numeral {numeral!r}; e.g. I, vi, bVII, V7, ii°, IVmaj7")
    acc, rn, suffix = m.groups()
    root = (tonic + _ROMAN[rn.lower()] + {"b": -1, "#": 1, None: 0}[acc]) % 12
    upper = rn.isupper()
    if suffix in ("°", "o"):
        q = "dim"
    elif suffix == "+":
        q = "aug"
    elif suffix == "7":
        q = "7" if upper else "min7"
    elif suffix == "add9":
        q = "add9" if upper else "madd9"
    elif suffix in ("maj7", "m7b5", "sus2", "sus4"):
        q = suffix
    else:
        q = "maj" if upper else "min"
    return root, tuple((root + s) % 12 for s in QUALITIES[q])


# Progression families, by mode. Each progression is a loop of bars; the arranger picks one per section
# and varies it; the last chord of each loop leads back to the first (cadence), so loops repeat well.
PROGRESSIONS: dict[str, tuple[tuple[str, ...], ...]] = {
    "lydian": (("Imaj7", "II", "Imaj7", "II"), ("I", "II", "vi", "V"), ("Iadd9", "II", "iii", "II"),
               ("I", "II", "V", "I")),
    "major": (("I", "V", "vi", "IV"), ("I", "vi", "IV", "V"), ("I", "IV", "vi", "V"), ("I", "iii", "IV", "V"),
              ("Imaj7", "IVmaj7", "iii7", "vi7"), ("I", "vi", "ii7", "V7"), ("I", "IV", "I", "V"),
              ("IV", "V", "iii", "vi"), ("I", "V", "IV", "V"), ("I", "ii", "IV", "V"), ("I", "IV", "V", "I"),
              ("I", "V", "I", "IV"), ("Iadd9", "IV", "Iadd9", "V")),
    "mixolydian": (("I", "bVII", "IV", "I"), ("I", "bVII", "I", "IV"), ("I", "v", "bVII", "IV"),
                   ("I", "IV", "bVII", "IV")),
    "dorian": (("i7", "IV7", "i7", "IV7"), ("i", "ii", "bIII", "IV"), ("i", "IV", "bVII", "i"),
               ("i", "bVII", "IV", "i")),
    "minor": (("i", "bVI", "bIII", "bVII"), ("i", "iv", "bVI", "v"), ("i", "bVII", "bVI", "bVII"),
              ("i", "bVI", "iv", "v"), ("i", "iv", "i", "bVII"), ("i", "bIII", "bVII", "iv"),
              ("bVI", "bVII", "i", "i"), ("i", "iv", "v", "i"), ("i", "i", "iv", "bVI")),
    "harmonic_minor": (("i", "iv", "V", "i"), ("i", "bVI", "iv", "V"), ("i", "bVII", "bVI", "V"),
                       ("i", "ii°", "V7", "i"), ("i", "bVI", "ii°", "V"), ("i", "iv", "i", "V")),
    "phrygian": (("i", "bII", "i", "i"), ("i", "bII", "iv", "i"), ("i", "iv", "bII", "i"), ("i", "bII", "bvii", "i"),
                 ("i", "bII", "i", "bII")),
}



@lru_cache(maxsize=256)
def progression_key_score(progression: tuple[str, ...], mode: str) -> float:
    """Major-minus-minor KK correlation of a progression's chord tones (roots weighted 1.5) over its scale.

    The arranger prefers progressions whose tonality agrees with the valence: the same measure that
    metrics.key_score applies to the output, computed on the harmony alone.
    """
    h = np.zeros(12)
    for numeral in progression:
        _, pcs = roman_chord(numeral, 0)
        for i, pc in enumerate(pcs):
            h[pc] += 1.5 if i == 0 else 1.0
    for pc in scale_pcs(0, mode):
        h[pc] += 0.5
    major, minor = key_correlations(h)
    return float(major.max() - minor.max())


def progression_weights(mode: str, valence: float, sharpness: float = 8.0) -> list[float]:
    """Weights for choosing among PROGRESSIONS[mode]: the brighter the valence, the more major-sounding."""
    v = min(1.0, max(-1.0, float(valence)))
    return [math.exp(sharpness * v * progression_key_score(p, mode)) for p in PROGRESSIONS[mode]]


# The chord a known boundary is approached from (a dominant or the mode's own leading chord).
APPROACH: dict[str, str] = {"lydian": "II", "major": "V7", "mixolydian": "bVII", "dorian": "IV",
                            "minor": "bVII", "harmonic_minor": "V7", "phrygian": "bII"}


def tempo_for_arousal(arousal: float, tempo_min: float = 60.0, tempo_max: float = 160.0) -> float:
    """Tempo in bpm for an arousal in [-1, 1]: calm low, excited high.

    The curve is slightly convex (exponent 1.2) so that neutral arousal sits a little below the middle
    of the range (a resting pulse of ~105 bpm for 60..160), and it is clamped to the range.
    """
    if not tempo_min < tempo_max:
        raise ValueError(f"tempo_min ({tempo_min}) must be below tempo_max ({tempo_max})")
    x = (min(1.0, max(-1.0, float(arousal))) + 1.0) / 2.0
    return tempo_min + (tempo_max - tempo_min) * x ** 1.2


def modes_for_valence(valence: float) -> tuple[tuple[str, float], ...]:
    """Candidate modes with weights for a valence in [-1, 1]: lydian/major high, minor/phrygian low."""
    v = min(1.0, max(-1.0, float(valence)))
    if v >= 0.5:
        return (("major", 0.85), ("lydian", 0.15))
    if v >= 0.15:
        return (("major", 0.8), ("mixolydian", 0.2))
    if v > -0.15:
        return (("dorian", 0.5), ("mixolydian", 0.3), ("major", 0.2))
    if v > -0.5:
        return (("minor", 0.65), ("dorian", 0.35))
    return (("harmonic_minor", 0.45), ("minor", 0.3), ("phrygian", 0.25))


def related_tonic(tonic: int, mode: str, new_mode: str, choice: int) -> int:
    """A tonic for a new section that relates to the old key: same, a fifth up/down, or relative."""
    was_minor, is_minor = mode in MINOR_MODES, new_mode in MINOR_MODES
    relative = (tonic + 3) % 12 if was_minor and not is_minor else (tonic - 3) % 12 if is_minor and not was_minor else tonic
    options = (tonic, relative, (tonic + 7) % 12, (tonic + 5) % 12, (tonic + 2) % 12)
    return options[choice % len(options)]


def _voicing_cost(cand: Sequence[int], prev: Sequence[int] | None, center: float) -> float:
    """Movement from the previous voicing plus penalties for bad spacing."""
    cost = 0.0
    if prev:
        p = sorted(prev)
        c = sorted(cand)
        if len(p) == len(c):
            cost += sum(abs(a - b) for a, b in zip(c, p))
        else:  # different voice counts: each new voice to its nearest old one
            cost += sum(min(abs(a - b) for b in p) for a in c)
    else:
        cost += abs(sum(cand) / len(cand) - center)
    gaps = [b - a for a, b in zip(cand, cand[1:])]
    cost += sum(3.0 for g in gaps if g == 1)  # semitone clusters sound muddy in a pad
    cost += sum(0.7 * (g - 9) for g in gaps if g > 9)  # holes wider than a sixth
    cost += 0.05 * abs(sum(cand) / len(cand) - center)  # drift back towards the register centre
    cost += 0.3 * max(0, cand[-1] - cand[0] - 14)  # keep the voicing within about an octave and a third
    return cost


@lru_cache(maxsize=4096)
def _voice_lead(prev: tuple[int, ...] | None, pcs: tuple[int, ...], n: int, low: int, high: int, center: float) -> tuple[int, ...]:
    pool = [p for p in range(low, high + 1) if p % 12 in pcs]
    need = set(pcs[: min(len(pcs), n)])  # root, third, fifth (and seventh when there is room) must sound
    best, best_cost = None, math.inf
    for cand in combinations(pool, n):
        if not need <= {p % 12 for p in cand}:
            continue
        c = _voicing_cost(cand, prev, center)
        if c < best_cost:
            best, best_cost = cand, c
    if best is None:  # range too narrow for n voices: fall back to a close position
        base = low + ((pcs[0] - low) % 12)
        best = tuple(sorted(base + ((pc - pcs[0]) % 12) for pc in pcs[:n]))
    return best


def voice_lead(prev: Sequence[int] | None, pcs: Sequence[int], n_voices: int = 4, low: int = 52, high: int = 76,
               center: float | None = None) -> list[int]:
    """Voicing of chord `pcs` (root first) with `n_voices` pitches in [low, high] that moves least from `prev`.

    Every chord tone (up to n_voices of them) sounds; extra voices double; semitone clusters and wide
    holes cost extra. Deterministic (ties go to the first candidate in ascending order).
    """
    if n_voices < 1 or high - low < 12:
        raise ValueError("voice_lead needs n_voices >= 1 and a range of at least an octave")
    c = (low + high) / 2 if center is None else center
    return list(_voice_lead(tuple(sorted(prev)) if prev else None, tuple(p % 12 for p in pcs), n_voices, low, high, round(c, 1)))


def nearest_pitch(pc: int, target: float, low: int = 0, high: int = 127) -> int:
    """The pitch of class `pc` nearest to `target` within [low, high]."""
    cands = [p for p in range(max(0, low), min(127, high) + 1) if p % 12 == pc % 12]
    if not cands:
        raise ValueError(f"no pitch of class {pc} in {low}..{high}")
    return min(cands, key=lambda p: (abs(p - target), p))


def pc_histogram(pitches_weights: Sequence[tuple[int, float]]) -> np.ndarray:
    """12-bin histogram of pitch classes from (pitch, weight) pairs."""
    h = np.zeros(12)
    for p, w in pitches_weights:
        h[p % 12] += w
    return h


def _centred_unit(x: np.ndarray) -> np.ndarray:
    """Rows minus their mean, scaled to unit length (a Pearson correlation is then a dot product)."""
    # x.mean and np.linalg.norm spelled out as the ufuncs they run (the same values, without their Python
    # overhead: a key fit runs at every generated note)
    x = x - np.add.reduce(x, axis=-1, keepdims=True) / x.shape[-1]
    norm = np.sqrt(np.add.reduce(x * x, axis=-1, keepdims=True))
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 1e-12)


# the 24 key profiles (12 major tonics, then 12 minor), prepared once: a key fit is one small matmul
_KEY_PROFILES = _centred_unit(np.stack([np.roll(KK_MAJOR, t) for t in range(12)] + [np.roll(KK_MINOR, t) for t in range(12)]))


def flat_histogram(h: np.ndarray) -> np.ndarray:
    """Whether each histogram (rows of h, keepdims) is empty or flat: all its counts np.isclose to its first."""
    first = h[..., :1]
    # np.isclose(h, first) spelled out (the same test, without its overhead: this runs at every generated note)
    close = (np.abs(h - first) <= 1e-8 + 1e-5 * np.abs(first)) & np.isfinite(first) | (h == first)
    return close.all(axis=-1, keepdims=True) | (h.sum(axis=-1, keepdims=True) <= 0)


def key_correlations(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of a pitch-class histogram with the 12 major and 12 minor KK profiles.

    Returns (major[12], minor[12]) indexed by tonic; for a stack of histograms (..., 12), arrays (..., 12).
    A flat or empty histogram correlates 0 with all.
    """
    h = np.asarray(hist, dtype=float)
    corr = np.where(flat_histogram(h), 0.0, _centred_unit(h) @ _KEY_PROFILES.T)
    return corr[..., :12], corr[..., 12:]


def best_key(hist: np.ndarray) -> tuple[int, str, float]:
    """(tonic pc, 'major' or 'minor', correlation) of the best-fitting Krumhansl-Kessler key."""
    major, minor = key_correlations(hist)
    tm, tn = int(np.argmax(major)), int(np.argmax(minor))
    if major[tm] >= minor[tn]:
        return tm, "major", float(major[tm])
    return tn, "minor", float(minor[tn])
