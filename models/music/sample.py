"""Sampling the music transformer: temperature and top-p (EMSYNC: 1.3 and 0.6), with guards that keep
the output playable and the token sequence valid.

Guards (masks on the logits, never edits of what was played):
- no PAD/BOS; BAR only where the caller's bar grid puts it (it is forced, not sampled);
- a note-off only for a sounding note, a note-on only for a silent key (no double strike);
- bounded polyphony: no new pitched note while `max_polyphony` are sounding;
- every note closed: a note held longer than `max_hold_ticks` is closed by a forced note-off, and `close_all`
  gives the note-offs of everything still sounding;
- a key token (windows.py) once at a time, never between a CHORD or velocity token and its notes;
- no runaway repetition: at most `max_events_per_tick` events without time moving, a key struck at most
  `max_repeats_per_beat` times per beat, no velocity or CHORD token twice in a row, and no pitch taking
  more than `max_same_share` of an instrument's last 8 notes (a small model sampled cool falls into
  hammering one note: a melody, not a loop, is what the data holds);
- a drummer's two hands and feet: at most `max_drums_per_tick` drum hits at once and `max_drums_per_beat`
  in a beat (a small model can fall into a roll over every drum key, which no kit plays);
- the CHORD token keeps its meaning from the data (3+ pitch classes starting together, held about two
  beats): after it, time does not move until the model has struck 3 distinct pitch classes, and those
  notes are not released before `chord_hold_ticks`. Which notes, on which instruments, is the model's choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from cuecast.models.music import tokens as T

# the masks are built in numpy (a dozen tiny ops per token cost a fraction of torch's) and handed over as a tensor
_SHIFT = T.KIND == 1
_NOT_SHIFT = ~_SHIFT
_VEL = T.KIND == 2
_ON = T.KIND == 3
_OFF = T.KIND == 4
_PITCHED_ON = T.PITCHED_ON
_DRUM_ON = _ON & ~_PITCHED_ON
_KEY = T.KIND == 5
_ALWAYS_MASKED = np.zeros(T.VOCAB_SIZE, dtype=bool)
_ALWAYS_MASKED[[T.PAD, T.BOS, T.BAR]] = True
_START = _ALWAYS_MASKED | _OFF  # offs: only of sounding notes
_INST, _KINDS = T.TOK_INST.tolist(), T.KIND.tolist()  # per-token lookups as Python lists: numpy scalar indexing is slow in a per-token loop


@dataclass
class Guard:
    max_polyphony: int = 16
    max_hold_ticks: int = 4 * T.TICKS_PER_BEAT
    max_events_per_tick: int = 24
    max_repeats_per_beat: int = 4
    chord_hold_ticks: int = 2 * T.TICKS_PER_BEAT
    max_drums_per_tick: int = 3
    max_drums_per_beat: int = 10
    max_same_share: float = 0.5
    tick: int = 0  # ticks since the start
    open: dict[int, int] = field(default_factory=dict)  # on-token -> tick it started
    events_this_tick: int = 0
    last: int = T.BOS
    strikes: dict[int, list[int]] = field(default_factory=dict)  # on-token -> ticks struck
    chord_tick: int = -1  # tick of the last CHORD token
    chord_pcs: set[int] = field(default_factory=set)  # pitch classes struck at it
    chord_notes: set[int] = field(default_factory=set)  # on-tokens struck at it
    drum_ticks: list[int] = field(default_factory=list)  # ticks of the drum hits of the last beat
    recent: dict[int, list[int]] = field(default_factory=dict)  # pitched inst -> its last 8 on-tokens

    def copy(self) -> "Guard":
        return Guard(self.max_polyphony, self.max_hold_ticks, self.max_events_per_tick, self.max_repeats_per_beat,
                     self.chord_hold_ticks, self.max_drums_per_tick, self.max_drums_per_beat, self.max_same_share,
                     self.tick, dict(self.open), self.events_this_tick, self.last,
                     {k: list(v) for k, v in self.strikes.items()}, self.chord_tick, set(self.chord_pcs),
                     set(self.chord_notes), list(self.drum_ticks), {k: list(v) for k, v in self.recent.items()})

    def chord_pending(self) -> bool:
        """A CHORD token at this tick still waits for its third pitch class."""
        return self.chord_tick == self.tick and len(self.chord_pcs) < 3

    def forced(self) -> int | None:
        """A note-off the guard imposes now (a note held too long), or None."""
        for on, start in self.open.items():
            if self.tick - start >= self.max_hold_ticks:
                return on_to_off(on)
        return None

    def mask(self, max_shift: int = T.MAX_SHIFT) -> torch.Tensor:
        """Boolean (V,) of tokens not allowed next."""
        m = _START.copy()
        if self.open:
            # a note lasts at least one tick (as in the data): no off in the tick it started
            m[[on_to_off(o) for o, st in self.open.items() if _INST[o] > 0 and st < self.tick]] = False
            m[list(self.open)] = True  # no double strike of a sounding key
        pitched_open = sum(1 for o in self.open if _INST[o] > 0)
        if pitched_open >= self.max_polyphony:
            m |= _PITCHED_ON
        last_kind = _KINDS[self.last]
        if self.last in (T.CHORD,) or last_kind == 2:
            m[T.CHORD] = True
            m |= _VEL
        if last_kind == 2:
            m |= _SHIFT  # a velocity token is followed by its note
            m |= _OFF
        if last_kind in (2, 5) or self.last == T.CHORD or self.chord_pending():
            m |= _KEY  # a key opens a section: once, and not between a chord (or a level) and its notes
        if self.events_this_tick >= self.max_events_per_tick:
            m |= _NOT_SHIFT  # let time move
            m[T.VEL0:T.VOCAB_SIZE] = True
        drums_now = sum(1 for t in self.drum_ticks if t == self.tick)
        if drums_now >= self.max_drums_per_tick or len(self.drum_ticks) >= self.max_drums_per_beat:
            m |= _DRUM_ON
        for last in self.recent.values():
            distinct = set(last)
            most = len(last) - len(distinct) + 1  # no pitch is there more often than this
            if most < 2 or not most + 1 > self.max_same_share * (len(last) + 1):
                continue  # (the usual case: no need to count)
            for on in distinct:
                n = last.count(on)
                if n >= 2 and n + 1 > self.max_same_share * (len(last) + 1):
                    m[on] = True
        for on, ticks in self.strikes.items():  # (fewer strikes than the cap: no need to count)
            if len(ticks) >= self.max_repeats_per_beat and sum(1 for t in ticks if self.tick - t < T.TICKS_PER_BEAT) >= self.max_repeats_per_beat:
                m[on] = True
        if self.open:  # time may not pass the moment the oldest note must be closed
            max_shift = max(1, min(max_shift, min(self.open.values()) + self.max_hold_ticks - self.tick))
        if max_shift < T.MAX_SHIFT:
            m[T.SHIFT0 + max_shift:T.VEL0] = True
        if self.chord_pending():
            m |= _SHIFT
        held = [on_to_off(o) for o in self.chord_notes if o in self.open and self.tick - self.chord_tick < self.chord_hold_ticks]
        if held:
            m[held] = True
        if m.all():  # never a dead end: time may always move
            m[T.SHIFT0] = False
        return torch.from_numpy(m)

    def update(self, tok: int) -> None:
        kind = T.KIND[tok]
        if kind == 1:
            self.tick += tok - T.SHIFT0 + 1
            self.events_this_tick = 0
            self.strikes = {k: [t for t in v if self.tick - t < T.TICKS_PER_BEAT] for k, v in self.strikes.items()}
            self.strikes = {k: v for k, v in self.strikes.items() if v}
            self.drum_ticks = [t for t in self.drum_ticks if self.tick - t < T.TICKS_PER_BEAT]
        elif kind in (2, 3) or tok == T.CHORD:  # offs are bounded by the open notes; BAR is the grid's
            self.events_this_tick += 1
        if tok == T.CHORD:
            self.chord_tick, self.chord_pcs, self.chord_notes = self.tick, set(), set()
        if kind == 3:
            if T.TOK_INST[tok] > 0:
                self.open[tok] = self.tick
                last = self.recent.setdefault(int(T.TOK_INST[tok]), [])
                last.append(tok)
                del last[:-8]
                if self.chord_tick == self.tick:
                    self.chord_pcs.add(int(T.TOK_PITCH[tok]) % 12)
                    self.chord_notes.add(tok)
            else:
                self.drum_ticks.append(self.tick)
            self.strikes.setdefault(tok, []).append(self.tick)
        elif kind == 4:
            self.open.pop(off_to_on(tok), None)
        self.last = tok

    def close_all(self) -> list[int]:
        """Note-off tokens for every sounding note."""
        return [on_to_off(o) for o in self.open if T.TOK_INST[o] > 0]


def on_to_off(on: int) -> int:
    return on + T.N_PITCH


def off_to_on(off: int) -> int:
    return off - T.N_PITCH


def sample(logits: torch.Tensor, mask: torch.Tensor, temperature: float, top_p: float,
           gen: torch.Generator, bias: torch.Tensor | None = None) -> int:
    """One token from logits (V,) with masked tokens removed: temperature, then nucleus (top-p)."""
    x = logits.float()
    if temperature != 1.0:  # x / 1.0 is x: one tensor op less per token at the usual setting
        x = x / max(temperature, 1e-4)
    if bias is not None:
        x = x + bias
    x = x.masked_fill(mask, -math.inf)
    probs = torch.softmax(x, dim=-1)
    tok = _nucleus_from_top(probs, top_p, gen)
    return _nucleus_sorted(probs, top_p, gen) if tok is None else tok


def _nucleus_sorted(probs: torch.Tensor, top_p: float, gen: torch.Generator) -> int:
    """Nucleus sampling over the fully sorted distribution (the definition; `_nucleus_from_top` is its shortcut)."""
    sp, si = torch.sort(probs, descending=True)
    keep = torch.cumsum(sp, 0) - sp < top_p  # the smallest set whose mass reaches top_p (at least one)
    sp = sp * keep
    j = int(torch.multinomial(sp / sp.sum(), 1, generator=gen))
    return int(si[j])


NUCLEUS_TOP = 64  # a nucleus of top_p 0.6 is a few tokens: the largest 64 of 840 nearly always hold it
NUCLEUS_MARGIN = 1e-4  # far above the float32 rounding of a cumulative sum of probabilities


def _nucleus_from_top(probs: torch.Tensor, top_p: float, gen: torch.Generator) -> int | None:
    """`_nucleus_sorted`'s token, from a top-k instead of a full sort, or None when that cannot be guaranteed.
    The same generator draw on the same (V,) weights gives the same token: the sorted values are unique;
    their cumulative sums are sequential, so a prefix's are the full sort's; the nucleus is a prefix that
    closes inside the top k with a margin (nothing after it can be kept); and its values are strictly
    decreasing down to the first value left out, so the sort places the same tokens there. Its few values
    are checked one by one in Python (a dozen numpy or torch calls on 64 values cost more than the sort)."""
    k = min(NUCLEUS_TOP, probs.shape[0])
    top, idx = torch.topk(probs, k)
    vals = top.tolist()
    p32 = np.float32(top_p)
    total = 0.0  # torch.cumsum accumulates float32 in float64, one element after the other
    n = 0  # the nucleus: vals[:n]
    for i, v in enumerate(vals):
        total += v
        before = np.float32(total) - np.float32(v)  # the mass before this token, in float32 as torch has it
        if before < p32:
            if n != i or (i + 1 < k and not v > vals[i + 1]):
                return None  # not a prefix (rounding), or tied with the next: leave it to the sort
            n = i + 1
        elif before >= top_p + NUCLEUS_MARGIN:
            break
    else:
        return None  # the nucleus may reach past the top k
    weights = torch.zeros_like(probs)
    weights[:n] = top[:n]
    return int(idx[_draw(weights / weights.sum(), gen)])


def _draw(p: torch.Tensor, gen: torch.Generator) -> int:
    """torch.multinomial(p, 1, generator=gen) for a p known valid, without its checks (half its time): the same
    exponential race it runs, argmax of p / Exp(1), with the same draws from the generator. The nucleus
    test in test_music_tokens compares the two, token and generator state."""
    return int((p / torch.empty_like(p).exponential_(1, generator=gen)).argmax())
