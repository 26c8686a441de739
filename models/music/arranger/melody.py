"""The melody part: four-bar phrases (motif, answer, motif again, cadence and rest) over the chords."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from cuecast.models.music import theory
from cuecast.models.music.arranger import feel
from cuecast.models.music.arranger.state import Section, clamp
from cuecast.types import Note, StepPlan

if TYPE_CHECKING:
    from cuecast.models.music.arranger.generator import Arranger


def play(a: "Arranger", plan: StepPlan, x: float, ev: list[Note]) -> None:
    """A 4-bar phrase: a motif in bar 1, an answer in bar 2, the motif again (on the new harmony) in
    bar 3, a cadence on a held chord tone and a rest in bar 4. Chord tones on strong beats, scale steps
    between, a contour that heads for a target pitch."""
    st, sec, rng = a.st, a.st.section, a.rng
    b, B, beat_s, t0 = plan.beat_in_bar, plan.beats_per_bar, plan.beat_s, plan.t0
    if plan.at_boundary or sec is None or not feel.uses_melody(a.st, x):
        return
    if plan.boundary_known and plan.time_to_boundary() < 1.2 * beat_s:
        return  # breathe before the cut
    if st.mel_until > t0 + 0.05:
        return  # the last note is still held: one line, one note at a time
    lo, hi = feel.mel_range(a.st, x)
    bar_in_phrase = (sec.bars - 1) % 4
    if bar_in_phrase == 3 and b >= B // 2:
        return  # the phrase ends: rest
    if b == 0 and bar_in_phrase == 0:
        st.mel_target = clamp(rng.randint(lo + 3, hi - 3), lo, hi)
        st.motif = {}
    if bar_in_phrase == 3 and b == 0:  # cadence: a chord tone held half a bar
        p = theory.nearest_pitch(st.pcs[rng.choice((0, 0, 1, 2))], st.mel_last, lo, hi)
        mel_note(a, ev, t0, (B // 2) * beat_s * 0.95, p, feel.vel(a.rng, x, 6))
        return
    cells = rhythm_cells(x, beat_s)
    repeat = bar_in_phrase == 2 and b in st.motif and sec.variant % 4 != 3
    if repeat:
        ci, steps = st.motif[b]
    else:
        ci, steps = rng.choices(range(len(cells)), [w for _, w in cells])[0], None
    cell = cells[ci][0]
    scale = theory.scale_pitches(sec.tonic, sec.mode, lo, hi)
    played: list[int | None] = []
    for k, (off, dur) in enumerate(cell):
        strong = off == 0 and b in (0, B // 2)
        if strong:
            cands = [theory.nearest_pitch(pc, st.mel_last, lo, hi) for pc in st.pcs[:3]]
            p = min(cands, key=lambda c: (abs(c - st.mel_target) + 2 * abs(c - st.mel_last), c))
            played.append(None)
        else:
            i = min(range(len(scale)), key=lambda j: abs(scale[j] - st.mel_last))
            if steps is not None and k < len(steps) and steps[k] is not None:
                step = steps[k]
            else:
                direction = 1 if st.mel_target > st.mel_last else -1 if st.mel_target < st.mel_last else rng.choice((-1, 1))
                step = direction * rng.choices((1, 2, -1, 0), (0.55, 0.2, 0.15, 0.1))[0]
            p = scale[min(len(scale) - 1, max(0, i + step))]
            played.append(step)
        if p == st.mel_target:
            st.mel_target = clamp(rng.randint(lo + 2, hi - 2), lo, hi)
        mel_note(a, ev, t0 + feel.swing(a.st, off, plan) * beat_s, dur * beat_s * 0.95 - (feel.swing(a.st, off, plan) - off) * beat_s, p,
                       feel.vel(a.rng, x, 8 + (6 if strong else 0) + phrase_swell(sec, b, B)) + feel.crescendo(plan, t0))
    if bar_in_phrase == 0:
        st.motif[b] = (ci, tuple(played))


def phrase_swell(sec: Section, b: int, B: int) -> int:
    """Dynamics over a 4-bar phrase: rise to the third bar, fall into the cadence."""
    pos = ((sec.bars - 1) % 4 + b / B) / 4.0
    return int(round(8 * math.sin(math.pi * pos))) - 3


def rhythm_cells(x: float, beat_s: float) -> list[tuple[tuple[tuple[float, float], ...], float]]:
    """Rhythms of one beat as (offset, length) in beats, with weights that shift to busier ones with arousal."""
    slow = x < 0.35
    return [
        ((), 1.0 if slow else 0.35),  # rest
        (((0.0, 2.0),), 1.2 if slow else 0.2),  # held over the next beat
        (((0.0, 1.0),), 1.0),
        (((0.0, 0.5), (0.5, 0.5)), 0.3 + 1.2 * x),
        (((0.0, 0.75), (0.75, 0.25)), 0.2 + 0.6 * x),
        (((0.5, 0.5),), 0.3 + 0.3 * x),
        (((0.0, 0.25), (0.25, 0.25), (0.5, 0.5)), 1.2 * x * x if beat_s > 0.3 else 0.0),
        (((0.0, 0.25), (0.25, 0.25), (0.5, 0.25), (0.75, 0.25)), 1.0 * x ** 3 if beat_s > 0.35 else 0.0),
    ]


def mel_note(a: "Arranger", ev: list[Note], t: float, dur: float, p: int, vel: int) -> None:
    a.st.mel_last = p
    a.st.mel_until = t + max(0.06, dur)
    ev.append(Note(t, t + max(0.06, dur), p, clamp(vel, 1, 127), "melody"))
