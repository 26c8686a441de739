"""The chords part: broken chords when calm, eighth arpeggios, off-beat stabs, then pulses when excited."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cuecast.models.music.arranger import feel
from cuecast.types import Note, StepPlan

if TYPE_CHECKING:
    from cuecast.models.music.arranger.generator import Arranger


STAB_S = 0.32  # an off-beat stab is short and detached: a rhythm, not a held chord


def play(a: "Arranger", plan: StepPlan, x: float, ev: list[Note]) -> None:
    """The chords instrument within the bar: arpeggios when calm, stabs and pulses when excited."""
    st, b, beat_s, t0 = a.st, plan.beat_in_bar, plan.beat_s, plan.t0
    if plan.at_boundary or not st.comp_voicing:
        return
    v = st.comp_voicing
    if x >= 0.6 and plan.boundary_known and plan.time_to_boundary() <= beat_s * 1.01:
        return  # a stop: the drum fill alone leads into the cut
    if x < 0.35:  # slow broken chord, each note left ringing like a sustain pedal
        sub = 1 if beat_s < 0.75 else 2
        for k in range(sub):
            i = (b * sub + k) % (2 * len(v) - 2)
            p = v[i] if i < len(v) else v[2 * len(v) - 2 - i]
            t = t0 + feel.swing(a.st, k / sub, plan) * beat_s
            ev.append(Note(t, t + max(beat_s, 1.2), p, feel.vel(a.rng, x, -8), "chords"))
    elif x < 0.6:  # eighth-note arpeggio (up, or up-down by variant)
        up_down = st.section.variant % 2
        for k in range(2):
            i = b * 2 + k
            n = len(v)
            idx = i % n if not up_down else (i % (2 * n - 2) if i % (2 * n - 2) < n else 2 * n - 2 - i % (2 * n - 2))
            t = t0 + feel.swing(a.st, k / 2, plan) * beat_s
            ev.append(Note(t, t + 0.9 * beat_s, v[idx], feel.vel(a.rng, x, -6 + (6 if k == 0 else 0)), "chords"))
    elif x < 0.8:  # off-beat stabs, short
        t = t0 + feel.swing(a.st, 0.5, plan) * beat_s
        dur = min(STAB_S, 0.45 * beat_s)
        for p in v[1:]:
            ev.append(Note(t, t + dur, p, feel.vel(a.rng, x, -4), "chords"))
    else:  # eighth pulses, accented on the beat, short
        dur = min(STAB_S, 0.4 * beat_s)
        for k in range(2):
            t = t0 + feel.swing(a.st, k / 2, plan) * beat_s
            for p in v[1:]:
                ev.append(Note(t, t + dur, p, feel.vel(a.rng, x, 2 if k == 0 else -10), "chords"))
