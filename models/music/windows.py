"""Training windows whose conditions lead the music, not follow it.

Why the model ignored its conditions: with labels constant over a piece (or over +-8 s), the context
already tells the model everything the label says — the mode and the density of what it is continuing —
so the cheapest way to predict the next token is to read the context and leave the condition inputs
unused. At generation time the model then follows its own first notes, whatever the conductor asks.

Here every window may change at a bar line inside it (its "split"), and the labels of the tokens after the
split describe the music *after* the split, which the context before it cannot predict:
- splice: the rest of the window comes from another piece (a section change, as at a cut);
- mode: each part is independently moved to its parallel mode (third, sixth and seventh of its key moved
  by a semitone), so the same rhythm and voicing appear in major and in minor;
- loudness: each part's velocities move by a few levels, so velocity follows arousal, not the source.
Labels are measured on each part as the listener hears it: valence is its major-minor key score,
arousal is note density (onsets/s) plus loudness plus a little register (what listeners hear as energy).

The split is also a boundary: the tokens before it get the seconds to it as their boundary offset, the
first beat after it is accented (velocity up, a crash and a kick when the music has drums) and the last
bar before it swells a level (a crescendo into the change). So the offset condition is followed by a
change of harmony and an accent in the data itself, which is what a cut should sound like.

Pure functions over token arrays (numpy); the trainer draws the random choices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cuecast.models.music import tokens as T
from cuecast.models.music.theory import key_correlations

# The scale degrees that tell major from minor (third, sixth, seventh)
MAJOR_TO_MINOR = {4: 3, 9: 8, 11: 10}
MINOR_TO_MAJOR = {3: 4, 8: 9, 10: 11}
CRASH, KICK = 49, 36
OFFSET_MAX = 8.0  # seconds: the model's clamp of the boundary offset
ACCENT_LEVELS = 2  # the first beat after a boundary: two velocity levels louder
SWELL_LEVELS = 1  # the bar before it: one level louder (a crescendo into the change)
MIN_NOTES_FOR_KEY = 6  # fewer pitched notes than this: the part's mode is unknown (valence missing)
MIN_SECONDS = 1.0  # a shorter part has no measurable density (arousal missing)
VELOCITY_WEIGHT = 1.5  # arousal = log(1 + onsets/s) + this x mean velocity/127 + ...
REGISTER_WEIGHT = 0.25  # ... + this x (mean pitch - 60) / 12


def transpose_tables(max_shift: int = 6) -> np.ndarray:
    """tab[s + max_shift, tok]: the token transposed by s semitones (pitched notes only, octave-folded at the edges)."""
    tabs = np.tile(np.arange(T.VOCAB_SIZE), (2 * max_shift + 1, 1))
    for tok in range(T.VOCAB_SIZE):
        kind, inst, pitch = T.decode(tok)
        if kind == "key":  # inst is the mode, pitch the tonic
            for s in range(-max_shift, max_shift + 1):
                tabs[s + max_shift, tok] = T.key_token(inst, pitch + s)
            continue
        if kind not in ("on", "off") or inst == 0:
            continue
        for s in range(-max_shift, max_shift + 1):
            p = pitch + s
            while p > T.PITCH_HI:
                p -= 12
            while p < T.PITCH_LO:
                p += 12
            tabs[s + max_shift, tok] = T.on_token(inst, p) if kind == "on" else T.off_token(inst, p)
    return tabs


def parallel_mode_tables() -> np.ndarray:
    """tab[m, r, tok]: the token in the parallel mode of tonic r (m=0: major -> minor, m=1: minor -> major)."""
    tabs = np.tile(np.arange(T.VOCAB_SIZE), (2, 12, 1))
    for tok in range(T.VOCAB_SIZE):
        kind, inst, pitch = T.decode(tok)
        if kind not in ("on", "off") or inst == 0:
            continue
        for m, moves in enumerate((MAJOR_TO_MINOR, MINOR_TO_MAJOR)):
            for r in range(12):
                dst = moves.get((pitch - r) % 12)
                if dst is None:
                    continue
                p = pitch + dst - (pitch - r) % 12
                p = p + 12 if p < T.PITCH_LO else p - 12 if p > T.PITCH_HI else p
                tabs[m, r, tok] = T.on_token(inst, p) if kind == "on" else T.off_token(inst, p)
    return tabs


def key_of(toks: np.ndarray) -> tuple[int, int, float, int]:
    """(mode 0 major / 1 minor, tonic, major-minor key score, pitched notes) of tokens' pitched note-ons."""
    on = toks[T.PITCHED_ON[toks]]
    hist = np.bincount(T.TOK_PITCH[on] % 12, minlength=12).astype(float)
    major, minor = key_correlations(hist)
    tm, tn = int(np.argmax(major)), int(np.argmax(minor))
    score = float(major[tm] - minor[tn])
    return (0 if major[tm] >= minor[tn] else 1), (tm if major[tm] >= minor[tn] else tn), score, len(on)


@dataclass
class Part:
    """One stretch of a window with one label: source tokens and what to do with them."""

    toks: np.ndarray  # source tokens (with their velocity tokens)
    sec: np.ndarray  # media seconds of each token in its piece
    offset: np.ndarray  # the corpus's seconds to the next CHORD (NaN: none)
    level: int  # velocity level in force at the first token
    flip: bool = False  # to the parallel mode
    vel_delta: int = 0


@dataclass
class Window:
    tokens: np.ndarray  # (n,) int64, PAD-filled to n
    valence_raw: np.ndarray  # (n,) float, NaN = missing
    arousal_raw: np.ndarray
    offset: np.ndarray


def level_before(stream: np.ndarray, i: int, lookback: int = 256) -> int:
    """The velocity level in force at stream[i] (the last velocity token before it; 4 when none is near)."""
    lo = max(0, i - lookback)
    back = stream[lo:i][::-1]
    vel = np.flatnonzero(T.KIND[back] == T.Kind.VEL)
    return int(back[vel[0]] - T.VEL0) if len(vel) else 4


def build(parts: list[Part], n: int, mode_tabs: np.ndarray, boundary: bool, drums_accent: bool = True,
          fresh: bool = False) -> Window:
    """Join parts into one window of n tokens: modes, velocities re-levelled, open notes closed at each join,
    orphan note-offs dropped, labels measured per part; `boundary` marks the joins as boundaries. Each later
    part, and the first when the window starts a piece (`fresh`: BOS in front, as generation starts), opens
    with the key token of its own key."""
    out: list[int] = []
    lv: list[int] = []  # velocity level of each note-on in `out` (-1 for other tokens)
    ticks: list[int] = []  # tick of each token, from the window's start
    sec: list[float] = []
    off: list[float] = []
    part_of: list[int] = []
    joins: list[tuple[int, int, float]] = []  # (index in out, tick, seconds) where each later part starts
    sounding: dict[tuple[int, int], int] = {}  # (inst, source pitch) -> emitted note-on token
    tick = 0
    for k, p in enumerate(parts):
        if k:
            for tok in sounding.values():  # the previous part's notes end where it ends
                out.append(tok + T.N_PITCH); lv.append(-1); ticks.append(tick); sec.append(sec[-1] if sec else 0.0)
                off.append(np.nan); part_of.append(k - 1)
            sounding.clear()
            joins.append((len(out), tick, sec[-1] if sec else 0.0))
        mode, tonic, _, _ = key_of(p.toks)
        level = p.level
        for j, tok in enumerate(p.toks):
            tok = int(tok)
            kind = T.KIND[tok]
            if tok in (T.BOS, T.PAD):
                continue
            if kind == T.Kind.VEL:
                level = tok - T.VEL0
                continue
            if kind == T.Kind.SHIFT:
                tick += tok - T.SHIFT0 + 1
            elif kind in (T.Kind.ON, T.Kind.OFF) and T.TOK_INST[tok] > 0:
                key = (int(T.TOK_INST[tok]), int(T.TOK_PITCH[tok]))
                if kind == T.Kind.ON:
                    if key in sounding:  # a repeated key: close the old one first (MIDI holds a key once)
                        out.append(sounding.pop(key) + T.N_PITCH); lv.append(-1); ticks.append(tick)
                        sec.append(float(p.sec[j])); off.append(float(p.offset[j])); part_of.append(k)
                    tok = int(mode_tabs[mode, tonic, tok]) if p.flip else tok
                    sounding[key] = tok
                else:
                    if key not in sounding:
                        continue  # its note started before this part: dropped with it
                    tok = sounding.pop(key) + T.N_PITCH
            out.append(tok)
            lv.append(int(np.clip(level + p.vel_delta, 0, T.N_VEL - 1)) if kind == T.Kind.ON else -1)
            ticks.append(tick)
            sec.append(float(p.sec[j]))
            off.append(float(p.offset[j]))
            part_of.append(k)
    out_a, lv_a, ticks_a = np.array(out, dtype=np.int64), np.array(lv), np.array(ticks)
    sec_a, off_a, part_a = np.array(sec), np.array(off, dtype=float), np.array(part_of)
    if boundary and joins:
        out_a, lv_a, ticks_a, sec_a, off_a, part_a = _mark_boundaries(out_a, lv_a, ticks_a, sec_a, off_a, part_a,
                                                                      joins, drums_accent)
    val = np.full(len(out_a), np.nan)
    aro = np.full(len(out_a), np.nan)
    for k in range(len(parts)):
        sel = part_a == k
        v, a = part_labels(out_a[sel], lv_a[sel], sec_a[sel])
        val[sel], aro[sel] = v, a
    out_a, lv_a, val, aro, off_a = _with_keys(out_a, lv_a, ticks_a, part_a, val, aro, off_a, len(parts), fresh)
    if fresh:  # generation feeds BOS with no conditions
        out_a, lv_a = np.concatenate([[T.BOS], out_a]), np.concatenate([[-1], lv_a])
        val, aro, off_a = (np.concatenate([[np.nan], x]) for x in (val, aro, off_a))
    toks = _with_velocity_tokens(out_a, lv_a)
    keep = toks[1]
    res = [np.asarray(x)[keep] for x in (val, aro, off_a)]
    tok = toks[0]
    pad = n - len(tok)
    if pad > 0:
        tok = np.concatenate([tok, np.full(pad, T.PAD)])
        res = [np.concatenate([x, np.full(pad, np.nan)]) for x in res]
    return Window(tok[:n], res[0][:n], res[1][:n], res[2][:n])


def _mark_boundaries(out, lv, ticks, sec, off, part, joins, drums_accent):
    """Offsets to each join, a swell in the bar before it, an accent (and crash + kick) on the beat after it."""
    bar = 4 * T.TICKS_PER_BEAT
    ins_at: list[int] = []
    for idx, jt, js in joins:
        before = np.arange(len(out)) < idx
        to_join = js - sec
        off = np.where(before & (to_join >= 0), np.fmin(off, np.clip(to_join, 0.0, OFFSET_MAX)), off)
        on = lv >= 0
        swell = on & before & (ticks >= jt - bar)
        accent = on & ~before & (ticks < jt + T.TICKS_PER_BEAT)
        lv = np.where(swell, np.minimum(lv + SWELL_LEVELS, T.N_VEL - 1), lv)
        lv = np.where(accent, np.minimum(lv + ACCENT_LEVELS, T.N_VEL - 1), lv)
        has_drums = bool((T.KIND[out] == T.Kind.ON).any() and (T.TOK_INST[out[T.KIND[out] == T.Kind.ON]] == 0).any())
        if drums_accent and has_drums:
            ins_at.append(idx)
    if ins_at:  # crash + kick on the first beat of the new part (after the join's note-offs and BAR)
        for idx in sorted(ins_at, reverse=True):
            at = idx
            while at < len(out) and (out[at] == T.BAR or T.KIND[out[at]] == T.Kind.OFF) and ticks[at] == ticks[idx]:
                at += 1
            same_tick = out[(ticks == ticks[min(at, len(ticks) - 1)])]
            new = np.array([T.on_token(0, d) for d in (CRASH, KICK) if T.on_token(0, d) not in same_tick])
            if not len(new):
                continue
            level = min(T.N_VEL - 1, max(int(lv[idx:].max(initial=4)), 5))
            out = np.insert(out, at, new)
            k = len(new)
            lv = np.insert(lv, at, [level] * k)
            ticks = np.insert(ticks, at, [ticks[min(at, len(ticks) - 1)]] * k)
            sec = np.insert(sec, at, [sec[min(at, len(sec) - 1)]] * k)
            off = np.insert(off, at, [np.nan] * k)
            part = np.insert(part, at, [part[min(at, len(part) - 1)]] * k)
    return out, lv, ticks, sec, off, part


def _with_keys(out, lv, ticks, part, val, aro, off, n_parts: int, fresh: bool):
    """A key token at the start of each later part (and the first, when fresh), after its tick's BAR and
    note-offs, with the part's labels: the mode is chosen in one token from the valence, and every note after
    it can follow it. A part with too few pitched notes has no key."""
    at_list = []
    for k in range(0 if fresh else 1, n_parts):
        idx = np.flatnonzero(part == k)
        if not len(idx):
            continue
        mode, tonic, _, n_pitched = key_of(out[idx])
        if n_pitched < MIN_NOTES_FOR_KEY:
            continue
        at = int(idx[0])
        while at < len(out) and ticks[at] == ticks[idx[0]] and (out[at] == T.BAR or T.KIND[out[at]] == T.Kind.OFF):
            at += 1
        at_list.append((at, T.key_token(mode, tonic), int(idx[0])))
    for at, key, src in sorted(at_list, reverse=True):
        out, lv = np.insert(out, at, key), np.insert(lv, at, -1)
        val, aro, off = (np.insert(x, at, x[src]) for x in (val, aro, off))
    return out, lv, val, aro, off


def _with_velocity_tokens(out: np.ndarray, lv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tokens with a velocity token before every note-on whose level differs from the one in force, and
    the index (into `out`) each emitted token takes its conditions from."""
    toks, src = [], []
    level = -1
    for i, (tok, l) in enumerate(zip(out, lv)):
        if l >= 0 and l != level:
            toks.append(T.vel_token(int(l)))
            src.append(i)
            level = int(l)
        toks.append(int(tok))
        src.append(i)
    return np.array(toks, dtype=np.int64), np.array(src, dtype=np.int64)


def part_labels(toks: np.ndarray, levels: np.ndarray, sec: np.ndarray) -> tuple[float, float]:
    """Raw (valence, arousal) of one part as heard: key score; log density + loudness + register."""
    on = T.KIND[toks] == T.Kind.ON
    _, _, score, n_pitched = key_of(toks)
    val = score if n_pitched >= MIN_NOTES_FOR_KEY else np.nan
    span = float(sec.max() - sec.min()) if len(sec) else 0.0
    if span < MIN_SECONDS or not on.any():
        return val, (np.nan if span < MIN_SECONDS else 0.0)
    vel = np.array([T.level_velocity(int(x)) for x in levels[on]], dtype=float)
    pitched = T.PITCHED_ON[toks]
    register = float(T.TOK_PITCH[toks[pitched]].mean() - 60) / 12 if pitched.any() else 0.0
    aro = np.log1p(on.sum() / span) + VELOCITY_WEIGHT * vel.mean() / 127 + REGISTER_WEIGHT * register
    return val, float(aro)
