"""Harmony of the arranger: sections (key, mode, progression), the chord of each bar, and the hit on a cut.

Valence picks the mode and key (lydian/major when bright, minor/harmonic minor/phrygian when dark) and the
progression family. A cut starts, exactly on it, an accented chord on chords, pad and bass (with crash and
kick), often in a new or related key: the change of harmony a listener hears as the new shot. A known cut
ahead gets an approach chord in the bar before it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cuecast.models.music import theory
from cuecast.models.music.arranger import feel
from cuecast.models.music.arranger.state import DRUMS as D, Section, clamp
from cuecast.types import Note, StepPlan

if TYPE_CHECKING:
    from cuecast.models.music.arranger.generator import Arranger

# The chord on a cut rings for a bar, at least long enough to be heard as harmony rather than a click and
# at most as long as a held chord sounds fresh
HIT_MIN_S, HIT_MAX_S = 0.6, 2.5
# how often a new shot also brings a new (related) key: a film's cut to another place or moment is as often
# a change of tonal centre as a new chord in the same key
NEW_KEY_AT_CUT = 0.45


def new_section(a: "Arranger", plan: StepPlan, x: float, related: bool) -> None:
    rng, old = a.rng, a.st.section
    modes, weights = zip(*theory.modes_for_valence(plan.valence))
    mode = rng.choices(modes, weights)[0]
    if old is None:
        tonic = rng.choice((0, 2, 4, 5, 7, 9, 10))  # keys that sit well in every register used
    elif related:
        tonic = theory.related_tonic(old.tonic, old.mode, mode, rng.randrange(5))
    else:
        tonic = rng.randrange(12)
    prog = progression(a, mode, plan.valence)
    chord_bars = 2 if plan.beats_per_bar * plan.beat_s < 1.8 and rng.random() < 0.5 else 1
    a.st.section = Section(tonic, mode, prog, plan.valence, rng.randrange(1 << 16), chord_bars,
                               melody_octave=rng.choice((0, 0, 12)) if x < 0.4 else 0)
    a.st.prog_pos = 0
    a.st.mel_target = feel.mel_range(a.st, x)[0] + rng.randrange(4, 12)


def progression(a: "Arranger", mode: str, valence: float) -> tuple[str, ...]:
    progs = theory.PROGRESSIONS[mode]
    return a.rng.choices(progs, theory.progression_weights(mode, valence))[0]


def set_chord(a: "Arranger", numeral: str, t: float) -> None:
    st, sec = a.st, a.st.section
    st.numeral = numeral
    st.root, st.pcs = theory.roman_chord(numeral, sec.tonic)
    st.chord_t = t
    st.chord_bar = 0


def boundary_hit(a: "Arranger", plan: StepPlan, x: float, ev: list[Note]) -> None:
    """A new shot: maybe a new key or progression, and an accented chord exactly at t0."""
    st, rng = a.st, a.rng
    sec = st.section
    fits = sec is not None and sec.mode in dict(theory.modes_for_valence(plan.valence))
    r = rng.random()
    if sec is None or not fits or r < NEW_KEY_AT_CUT:
        new_section(a, plan, x, related=sec is not None and r < 0.8)
    elif r < 0.75:  # same key, another progression of the family
        sec.progression = progression(a, sec.mode, plan.valence)
        sec.bars, st.prog_pos = 0, 0
    else:
        sec.bars, st.prog_pos = 0, 0
    sec = st.section
    sec.bars = 1
    heard = set(st.pcs) | {st.mel_last % 12, st.bass_last % 12}
    # the new shot starts on a new chord, the one of its progression that shares the fewest notes with
    # what was heard just before the cut, the chord and the tune's and the bass's last notes (a cut the
    # harmony glides over is not heard as one)
    st.prog_pos = min(range(len(sec.progression)),
                      key=lambda i: (len(set(theory.roman_chord(sec.progression[i], sec.tonic)[1]) & heard), i))
    set_chord(a, sec.progression[st.prog_pos], plan.t0)
    hold = max(HIT_MIN_S, min(plan.beats_per_bar * plan.beat_s, HIT_MAX_S))
    if plan.boundary_known and plan.next_boundary is not None and plan.next_boundary > plan.t0:
        hold = max(HIT_MIN_S, min(hold, plan.next_boundary - plan.t0 - 0.02))
    soft = plan.boundary_kind in ("fade", "dissolve", "mood")  # a gradual transition (or a new mood) swells, no hit
    vel = feel.vel(a.rng, x, 8 if soft else 22)
    shift = feel.shift(x)
    st.comp_voicing = tuple(theory.voice_lead(st.comp_voicing or None, st.pcs, 4, 52 + shift, 76 + shift))
    st.pad_voicing = tuple(theory.voice_lead(st.pad_voicing or None, st.pcs, 4, 48, 72))
    for p in st.comp_voicing:
        ev.append(Note(plan.t0, plan.t0 + hold, p, vel, "chords"))
    for p in st.pad_voicing:
        ev.append(Note(plan.t0, plan.t0 + hold, p, clamp(vel - 12, 20, 120), "pad"))
    # the bass holds the root only until its own line goes on (it plays one note at a time)
    st.bass_last = theory.nearest_pitch(st.root, st.bass_last, 28, 50)
    bass_hold = hold if x < 0.3 else min(hold, max(1, plan.beats_per_bar // 2) * plan.beat_s - 0.05) if x < 0.5 \
        else min(hold, 0.92 * plan.beat_s)
    ev.append(Note(plan.t0, plan.t0 + max(0.1, bass_hold), st.bass_last, vel, "bass"))
    # the melody lands on a chord tone of the new chord, one that was not just heard: it belongs to the hit,
    # and a tune that holds its note across the cut ties the two shots together
    fresh = [pc for pc in st.pcs[:3] if pc not in heard] or list(st.pcs[:3])
    st.mel_last = theory.nearest_pitch(a.rng.choice(fresh), st.mel_last, *feel.mel_range(a.st, x))
    if x >= 0.25:
        mel_hold = min(hold, 2 * plan.beat_s)
        st.mel_until = plan.t0 + mel_hold
        ev.append(Note(plan.t0, plan.t0 + mel_hold, st.mel_last, clamp(vel + 4, 1, 127), "melody"))
    if not soft:
        ev.append(Note(plan.t0, plan.t0 + 0.5, D["crash"], clamp(vel + 15, 60, 127), "drums"))
    ev.append(Note(plan.t0, plan.t0 + 0.1, D["kick"], clamp(vel + (-20 if soft else 10), 30, 127), "drums"))


def downbeat(a: "Arranger", plan: StepPlan, x: float, ev: list[Note]) -> None:
    """A new bar: the next chord of the progression (or an approach chord into a known boundary)."""
    st, rng = a.st, a.rng
    bar_s = plan.beats_per_bar * plan.beat_s
    if st.section is None:
        new_section(a, plan, x, related=False)
        set_chord(a, st.section.progression[0], plan.t0)
        pad_change(a, plan, x, ev, bar_s)
        st.section.bars = 1
        return
    sec = st.section
    sec.bars += 1
    # the bar right after a boundary chord keeps that chord: a block chord a beat after the hit
    # would blur it
    if plan.t0 - st.chord_t < max(1.0, 1.5 * plan.beat_s):
        return
    # a phrase start (every 8 bars) may modulate when the emotion left the section's mode
    if (sec.bars - 1) % 8 == 0 and sec.bars > 1:
        if sec.mode not in dict(theory.modes_for_valence(plan.valence)):
            new_section(a, plan, x, related=True)
            st.section.bars = 1
            set_chord(a, st.section.progression[0], plan.t0)
            pad_change(a, plan, x, ev, bar_s)
            return
        if rng.random() < 0.4:
            sec.progression = progression(a, sec.mode, plan.valence)
            st.prog_pos = -1
    ttb = plan.time_to_boundary()
    approach = plan.boundary_known and plan.next_boundary is not None and 0.5 * plan.beat_s < ttb <= bar_s + 1e-6
    st.chord_bar += 1
    if not approach and st.chord_bar < sec.chord_bars:
        return
    if approach:
        numeral = theory.APPROACH[sec.mode]
    else:
        st.prog_pos = (st.prog_pos + 1) % len(sec.progression)
        numeral = sec.progression[st.prog_pos]
    if numeral == st.numeral and not approach and rng.random() < 0.5:
        return  # the same chord again: let it ring
    set_chord(a, numeral, plan.t0)
    pad_change(a, plan, x, ev, bar_s * sec.chord_bars)


def pad_change(a: "Arranger", plan: StepPlan, x: float, ev: list[Note], hold: float) -> None:
    """The one block-chord onset of a bar: the pad (or, without a pad, the comping chord) changes chord."""
    st = a.st
    st.pad_voicing = tuple(theory.voice_lead(st.pad_voicing or None, st.pcs, 4 if x > 0.3 else 3, 48, 72))
    shift = feel.shift(x)
    st.comp_voicing = tuple(theory.voice_lead(st.comp_voicing or None, st.pcs, 4, 52 + shift, 76 + shift))
    if feel.uses_pad(a.st, x):
        vel = clamp(feel.vel(a.rng, x, -14), 18, 110)
        for p in st.pad_voicing:
            ev.append(Note(plan.t0, plan.t0 + hold - 0.03, p, vel, "pad"))
    else:
        vel = feel.vel(a.rng, x, -2)
        for p in st.comp_voicing[:3]:
            ev.append(Note(plan.t0, plan.t0 + min(hold, 2 * plan.beat_s) - 0.03, p, vel, "chords"))


def next_root(a: "Arranger", plan: StepPlan) -> int:
    st, sec = a.st, a.st.section
    ttb = plan.time_to_boundary(plan.t0 + plan.beat_s)
    if plan.boundary_known and plan.next_boundary is not None and 0 < ttb <= plan.beats_per_bar * plan.beat_s:
        return theory.roman_chord(theory.APPROACH[sec.mode], sec.tonic)[0]
    if st.chord_bar + 1 < sec.chord_bars:
        return st.root
    return theory.roman_chord(sec.progression[(st.prog_pos + 1) % len(sec.progression)], sec.tonic)[0]
