"""The bass part: held roots when calm, roots and fifths, a walking line, then driving eighths."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cuecast.models.music import theory
from cuecast.models.music.arranger import feel, harmony
from cuecast.models.music.arranger.state import clamp
from cuecast.types import Note, StepPlan

if TYPE_CHECKING:
    from cuecast.models.music.arranger.generator import Arranger


def play(a: "Arranger", plan: StepPlan, x: float, ev: list[Note]) -> None:
    st, sec, b, B, beat_s, t0 = a.st, a.st.section, plan.beat_in_bar, plan.beats_per_bar, plan.beat_s, plan.t0
    if plan.at_boundary or sec is None:
        return
    root = theory.nearest_pitch(st.root, st.bass_last, 28, 50)
    fifth = theory.nearest_pitch((st.root + 7) % 12, root + 5, 28, 52)
    vel = feel.vel(a.rng, x, 4) + feel.crescendo(plan, t0)
    if x < 0.3:  # held roots
        if b == 0:
            bass_note(a, ev, t0, (B - 0.1) * beat_s, root, vel)
    elif x < 0.5:  # root and fifth, half notes
        half = max(1, B // 2)
        if b == 0:
            bass_note(a, ev, t0, (half - 0.1) * beat_s, root, vel)
        elif b == half:
            bass_note(a, ev, t0, (B - half - 0.1) * beat_s, fifth if sec.variant % 3 else root + 12 if root + 12 <= 52 else root, vel - 6)
    elif x < 0.75:  # walking: chord tones, then a chromatic or scale approach to the next root
        if b == 0:
            p = root
        elif b == B - 1:
            nxt = harmony.next_root(a, plan)
            target = theory.nearest_pitch(nxt, st.bass_last, 28, 50)
            p = target + a.rng.choice((-1, 1, 2, -2))
        else:
            cands = [theory.nearest_pitch(pc, st.bass_last, 28, 52) for pc in st.pcs] + [fifth]
            cands = [c for c in cands if c != st.bass_last] or cands
            p = a.rng.choice(cands)
        bass_note(a, ev, t0, 0.92 * beat_s, clamp(p, 26, 55), vel - (0 if b == 0 else 8))
    else:  # driving eighths: root, octave and fifth figures
        figs = ((0, 0), (0, 12), (0, 7), (12, 0))
        for k, off in enumerate(figs[(sec.variant + b) % len(figs)]):
            p = root + off if root + off <= 55 else root
            bass_note(a, ev, t0 + feel.swing(a.st, k / 2, plan) * beat_s, 0.4 * beat_s, p, vel - (0 if k == 0 else 10))


def bass_note(a: "Arranger", ev: list[Note], t: float, dur: float, p: int, vel: int) -> None:
    a.st.bass_last = p
    ev.append(Note(t, t + max(0.05, dur), p, clamp(vel, 1, 127), "bass"))
