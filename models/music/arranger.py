"""The `arranger` generator: a music-theory arranger driven one beat at a time.

Valence picks the mode and key (lydian/major when bright, minor/harmonic minor/phrygian when dark) and
the progression family; arousal sets density, velocity, register, the bass style (held roots, roots and
fifths, a walking line, driving eighths), the drum groove (none, soft, half-time, straight, busy) and the
chord comping (slow arpeggios, eighth arpeggios, off-beat stabs, pulses). The conductor sets the tempo.

Boundaries: every step with plan.at_boundary starts, exactly at t0, an accented chord (chords, pad and
bass, 3+ pitch classes, each held >= 0.5 s), with crash and kick; a known boundary ahead gets an approach
chord in the bar before it, a crescendo, a drum fill into it, and the melody rests before it.

Chord onsets away from boundaries are kept sparse on purpose, because cut alignment is measured against
random moments: sustained block chords start only where the harmony changes on a downbeat; within the
bar the comping is staggered (arpeggios) or short (stabs under 0.4 s), and a final guard staggers any
accidental cluster of 3+ long notes by a strum of 40 ms.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass, field

from cuecast.models.music import theory
from cuecast.models.music.config import GeneratorConfig
from cuecast.types import Note, StepPlan

D = theory.GM_DRUMS
CLUSTER_S = 0.03  # the chord-onset window of the alignment metric
LONG_S = 0.4  # the hold that makes a note count towards a chord onset
STAB_S = 0.32  # short comping stays clearly under LONG_S
STRUM_S = 0.04  # delay that moves a note out of a cluster
BOUNDARY_HOLD_S = 0.6  # the boundary chord is held at least this long (the metric wants 0.4)


@dataclass
class _Section:
    """One stretch of music in one key with one progression (a new one may start at a boundary)."""

    tonic: int
    mode: str
    progression: tuple[str, ...]
    valence: float
    variant: int  # picks among pattern variants so sections sound different
    chord_bars: int = 1  # bars per chord (2 at fast tempi sometimes: a slower harmonic rhythm)
    bars: int = 0  # bars started in this section
    melody_octave: int = 0


@dataclass
class _State:
    section: _Section | None = None
    numeral: str = "I"
    root: int = 0
    pcs: tuple[int, ...] = (0, 4, 7)
    chord_t: float = -math.inf  # when the current chord started
    chord_bar: int = 0  # bars into the current chord
    prog_pos: int = 0
    comp_voicing: tuple[int, ...] = ()
    pad_voicing: tuple[int, ...] = ()
    bass_last: int = 40
    mel_last: int = 72
    mel_target: int = 74
    mel_until: float = -math.inf  # the melody note sounding now ends here
    motif: dict = field(default_factory=dict)  # beat in bar -> (rhythm cell, scale steps) of the phrase's first bar
    recent: list[Note] = field(default_factory=list)  # pitched notes of the last second, for the guard
    allowed: list[float] = field(default_factory=list)  # times where a block chord onset is intended


def _clamp(v: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, round(v))))


class Arranger:
    """Music-theory generator (cuecast.types.Generator)."""

    name = "arranger"

    def __init__(self, cfg: GeneratorConfig | None = None):
        self.cfg = cfg or GeneratorConfig()
        self.reset(self.cfg.seed)

    # ---- Generator protocol ------------------------------------------------------------------
    def reset(self, seed: int) -> None:
        self.seed = int(seed)
        self.rng = random.Random(self.seed)
        self.st = _State()
        self._snapshots: list[tuple[float, _State, object]] = []

    def rewind(self, t: float) -> None:
        """Go back to the state before the step that contains t, and forget notes from t on."""
        keep = [s for s in self._snapshots if s[0] <= t + 1e-9]
        if not keep:
            self.reset(self.seed)
            return
        t0, st, rng_state = keep[-1]
        self._snapshots = keep[:-1]
        self.st = copy.deepcopy(st)
        self.rng.setstate(rng_state)
        self.st.recent = [n for n in self.st.recent if n.start < t]

    def step(self, plan: StepPlan) -> list[Note]:
        if not (plan.t1 > plan.t0 and plan.tempo_bpm > 0 and plan.beats_per_bar >= 1):
            raise ValueError(f"bad StepPlan: t0={plan.t0} t1={plan.t1} tempo={plan.tempo_bpm}; need t1 > t0, tempo > 0")
        self._snapshots.append((plan.t0, copy.deepcopy(self.st), self.rng.getstate()))
        del self._snapshots[:-64]
        st = self.st
        x = (min(1.0, max(-1.0, plan.arousal)) + 1.0) / 2.0  # arousal as 0..1
        downbeat = plan.beat_in_bar == 0 and plan.on_grid or plan.at_boundary
        ev: list[Note] = []
        if plan.at_boundary:
            self._boundary(plan, x, ev)
        elif st.section is None or downbeat:
            self._downbeat(plan, x, ev)
        self._comp(plan, x, ev)
        self._bass(plan, x, ev)
        self._melody(plan, x, ev)
        self._drums(plan, x, ev)
        return self._finish(plan, ev)

    # ---- harmony -----------------------------------------------------------------------------
    def _new_section(self, plan: StepPlan, x: float, related: bool) -> None:
        rng, old = self.rng, self.st.section
        modes, weights = zip(*theory.modes_for_valence(plan.valence))
        mode = rng.choices(modes, weights)[0]
        if old is None:
            tonic = rng.choice((0, 2, 4, 5, 7, 9, 10))  # keys that sit well in every register used
        elif related:
            tonic = theory.related_tonic(old.tonic, old.mode, mode, rng.randrange(5))
        else:
            tonic = rng.randrange(12)
        prog = self._progression(mode, plan.valence)
        chord_bars = 2 if plan.beats_per_bar * plan.beat_s < 1.8 and rng.random() < 0.5 else 1
        self.st.section = _Section(tonic, mode, prog, plan.valence, rng.randrange(1 << 16), chord_bars,
                                   melody_octave=rng.choice((0, 0, 12)) if x < 0.4 else 0)
        self.st.prog_pos = 0
        self.st.mel_target = self._mel_range(x)[0] + rng.randrange(4, 12)

    def _progression(self, mode: str, valence: float) -> tuple[str, ...]:
        progs = theory.PROGRESSIONS[mode]
        return self.rng.choices(progs, theory.progression_weights(mode, valence))[0]

    def _set_chord(self, numeral: str, t: float) -> None:
        st, sec = self.st, self.st.section
        st.numeral = numeral
        st.root, st.pcs = theory.roman_chord(numeral, sec.tonic)
        st.chord_t = t
        st.chord_bar = 0

    def _boundary(self, plan: StepPlan, x: float, ev: list[Note]) -> None:
        """A new shot: maybe a new key or progression, and an accented chord exactly at t0."""
        st, rng = self.st, self.rng
        sec = st.section
        fits = sec is not None and sec.mode in dict(theory.modes_for_valence(plan.valence))
        r = rng.random()
        if sec is None or not fits or r < 0.3:
            self._new_section(plan, x, related=sec is not None and r < 0.8)
        elif r < 0.65:  # same key, another progression of the family
            sec.progression = self._progression(sec.mode, plan.valence)
            sec.bars, st.prog_pos = 0, 0
        else:
            sec.bars, st.prog_pos = 0, 0
        sec = st.section
        sec.bars = 1
        self._set_chord(sec.progression[0], plan.t0)
        st.allowed.append(plan.t0)
        hold = max(BOUNDARY_HOLD_S, min(plan.beats_per_bar * plan.beat_s, 2.5))
        if plan.boundary_known and plan.next_boundary is not None and plan.next_boundary > plan.t0:
            hold = max(0.5, min(hold, plan.next_boundary - plan.t0 - 0.02))
        soft = plan.boundary_kind in ("fade", "dissolve")  # a gradual transition gets a swell, not a hit
        vel = self._vel(x, 8 if soft else 22)
        shift = self._shift(x)
        st.comp_voicing = tuple(theory.voice_lead(st.comp_voicing or None, st.pcs, 4, 52 + shift, 76 + shift))
        st.pad_voicing = tuple(theory.voice_lead(st.pad_voicing or None, st.pcs, 4, 48, 72))
        for p in st.comp_voicing:
            ev.append(Note(plan.t0, plan.t0 + hold, p, vel, "chords"))
        for p in st.pad_voicing:
            ev.append(Note(plan.t0, plan.t0 + hold, p, _clamp(vel - 12, 20, 120), "pad"))
        # the bass holds the root only until its own line goes on (it plays one note at a time)
        st.bass_last = theory.nearest_pitch(st.root, st.bass_last, 28, 50)
        bass_hold = hold if x < 0.3 else min(hold, max(1, plan.beats_per_bar // 2) * plan.beat_s - 0.05) if x < 0.5 \
            else min(hold, 0.92 * plan.beat_s)
        ev.append(Note(plan.t0, plan.t0 + max(0.1, bass_hold), st.bass_last, vel, "bass"))
        # the melody lands on a chord tone of the new chord: it belongs to the hit
        st.mel_last = theory.nearest_pitch(st.pcs[self.rng.choice((0, 1, 2))], st.mel_last, *self._mel_range(x))
        if x >= 0.25:
            mel_hold = min(hold, 2 * plan.beat_s)
            st.mel_until = plan.t0 + mel_hold
            ev.append(Note(plan.t0, plan.t0 + mel_hold, st.mel_last, _clamp(vel + 4, 1, 127), "melody"))
        if not soft:
            ev.append(Note(plan.t0, plan.t0 + 0.5, D["crash"], _clamp(vel + 15, 60, 127), "drums"))
        ev.append(Note(plan.t0, plan.t0 + 0.1, D["kick"], _clamp(vel + (-20 if soft else 10), 30, 127), "drums"))

    def _downbeat(self, plan: StepPlan, x: float, ev: list[Note]) -> None:
        """A new bar: the next chord of the progression (or an approach chord into a known boundary)."""
        st, rng = self.st, self.rng
        bar_s = plan.beats_per_bar * plan.beat_s
        if st.section is None:
            self._new_section(plan, x, related=False)
            self._set_chord(st.section.progression[0], plan.t0)
            self._pad_change(plan, x, ev, bar_s)
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
                self._new_section(plan, x, related=True)
                st.section.bars = 1
                self._set_chord(st.section.progression[0], plan.t0)
                self._pad_change(plan, x, ev, bar_s)
                return
            if rng.random() < 0.4:
                sec.progression = self._progression(sec.mode, plan.valence)
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
        self._set_chord(numeral, plan.t0)
        self._pad_change(plan, x, ev, bar_s * sec.chord_bars)

    def _pad_change(self, plan: StepPlan, x: float, ev: list[Note], hold: float) -> None:
        """The one block-chord onset of a bar: the pad (or, without a pad, the comping chord) changes chord."""
        st = self.st
        st.allowed.append(plan.t0)
        st.pad_voicing = tuple(theory.voice_lead(st.pad_voicing or None, st.pcs, 4 if x > 0.3 else 3, 48, 72))
        shift = self._shift(x)
        st.comp_voicing = tuple(theory.voice_lead(st.comp_voicing or None, st.pcs, 4, 52 + shift, 76 + shift))
        if self._uses_pad(x):
            vel = _clamp(self._vel(x, -14), 18, 110)
            for p in st.pad_voicing:
                ev.append(Note(plan.t0, plan.t0 + hold - 0.03, p, vel, "pad"))
        else:
            vel = self._vel(x, -2)
            for p in st.comp_voicing[:3]:
                ev.append(Note(plan.t0, plan.t0 + min(hold, 2 * plan.beat_s) - 0.03, p, vel, "chords"))

    # ---- texture from arousal ---------------------------------------------------------------
    def _uses_pad(self, x: float) -> bool:
        sec = self.st.section
        return x < 0.55 or (sec is not None and sec.variant % 3 == 0 and x < 0.8)

    def _uses_melody(self, x: float) -> bool:
        sec = self.st.section
        if x < 0.2:
            return sec is not None and sec.variant % 4 == 1
        return x >= 0.3 or (sec is not None and sec.variant % 2 == 0)

    def _shift(self, x: float) -> int:
        return _clamp(-4 + 8 * x, -4, 4)

    def _vel(self, x: float, offset: int = 0) -> int:
        return _clamp(40 + 60 * x + offset + self.rng.randint(-3, 3), 1, 127)

    def _mel_range(self, x: float) -> tuple[int, int]:
        octv = self.st.section.melody_octave if self.st.section else 0
        s = self._shift(x)
        return 62 + s + octv, 83 + s + octv

    def _at(self, off: float, plan: StepPlan) -> float:
        """Where an event written at `off` beats falls: some sections swing their off-beat eighths
        (delayed to two thirds of the beat at mid arousal, a lighter lilt when busier)."""
        sec = self.st.section
        x = (min(1.0, max(-1.0, plan.arousal)) + 1.0) / 2.0
        if sec is None or sec.variant % 5 != 2 or not 0.3 <= x < 0.8 or plan.beat_s < 0.3:
            return off
        if abs(off - 0.5) < 1e-9:
            return 0.5 + (0.167 if x < 0.6 else 0.1)
        if abs(off - 0.75) < 1e-9 or abs(off - 0.25) < 1e-9:
            return off + 0.05
        return off

    def _crescendo(self, plan: StepPlan, t: float) -> int:
        """Velocity added on the way into a known boundary less than a bar ahead."""
        if not plan.boundary_known or plan.next_boundary is None:
            return 0
        left = plan.next_boundary - t
        bar_s = plan.beats_per_bar * plan.beat_s
        return int(12 * (1.0 - left / bar_s)) if 0 < left < bar_s else 0

    # ---- instruments, one beat each -----------------------------------------------------------
    def _comp(self, plan: StepPlan, x: float, ev: list[Note]) -> None:
        """The chords instrument within the bar: arpeggios when calm, stabs and pulses when excited."""
        st, b, beat_s, t0 = self.st, plan.beat_in_bar, plan.beat_s, plan.t0
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
                t = t0 + self._at(k / sub, plan) * beat_s
                ev.append(Note(t, t + max(beat_s, 1.2), p, self._vel(x, -8), "chords"))
        elif x < 0.6:  # eighth-note arpeggio (up, or up-down by variant)
            up_down = st.section.variant % 2
            for k in range(2):
                i = b * 2 + k
                n = len(v)
                idx = i % n if not up_down else (i % (2 * n - 2) if i % (2 * n - 2) < n else 2 * n - 2 - i % (2 * n - 2))
                t = t0 + self._at(k / 2, plan) * beat_s
                ev.append(Note(t, t + 0.9 * beat_s, v[idx], self._vel(x, -6 + (6 if k == 0 else 0)), "chords"))
        elif x < 0.8:  # off-beat stabs, short
            t = t0 + self._at(0.5, plan) * beat_s
            dur = min(STAB_S, 0.45 * beat_s)
            for p in v[1:]:
                ev.append(Note(t, t + dur, p, self._vel(x, -4), "chords"))
        else:  # eighth pulses, accented on the beat, short
            dur = min(STAB_S, 0.4 * beat_s)
            for k in range(2):
                t = t0 + self._at(k / 2, plan) * beat_s
                for p in v[1:]:
                    ev.append(Note(t, t + dur, p, self._vel(x, 2 if k == 0 else -10), "chords"))

    def _bass(self, plan: StepPlan, x: float, ev: list[Note]) -> None:
        st, sec, b, B, beat_s, t0 = self.st, self.st.section, plan.beat_in_bar, plan.beats_per_bar, plan.beat_s, plan.t0
        if plan.at_boundary or sec is None:
            return
        root = theory.nearest_pitch(st.root, st.bass_last, 28, 50)
        fifth = theory.nearest_pitch((st.root + 7) % 12, root + 5, 28, 52)
        vel = self._vel(x, 4) + self._crescendo(plan, t0)
        if x < 0.3:  # held roots
            if b == 0:
                self._bass_note(ev, t0, (B - 0.1) * beat_s, root, vel)
        elif x < 0.5:  # root and fifth, half notes
            half = max(1, B // 2)
            if b == 0:
                self._bass_note(ev, t0, (half - 0.1) * beat_s, root, vel)
            elif b == half:
                self._bass_note(ev, t0, (B - half - 0.1) * beat_s, fifth if sec.variant % 3 else root + 12 if root + 12 <= 52 else root, vel - 6)
        elif x < 0.75:  # walking: chord tones, then a chromatic or scale approach to the next root
            if b == 0:
                p = root
            elif b == B - 1:
                nxt = self._next_root(plan)
                target = theory.nearest_pitch(nxt, st.bass_last, 28, 50)
                p = target + self.rng.choice((-1, 1, 2, -2))
            else:
                cands = [theory.nearest_pitch(pc, st.bass_last, 28, 52) for pc in st.pcs] + [fifth]
                cands = [c for c in cands if c != st.bass_last] or cands
                p = self.rng.choice(cands)
            self._bass_note(ev, t0, 0.92 * beat_s, _clamp(p, 26, 55), vel - (0 if b == 0 else 8))
        else:  # driving eighths: root, octave and fifth figures
            figs = ((0, 0), (0, 12), (0, 7), (12, 0))
            for k, off in enumerate(figs[(sec.variant + b) % len(figs)]):
                p = root + off if root + off <= 55 else root
                self._bass_note(ev, t0 + self._at(k / 2, plan) * beat_s, 0.4 * beat_s, p, vel - (0 if k == 0 else 10))

    def _bass_note(self, ev: list[Note], t: float, dur: float, p: int, vel: int) -> None:
        self.st.bass_last = p
        ev.append(Note(t, t + max(0.05, dur), p, _clamp(vel, 1, 127), "bass"))

    def _next_root(self, plan: StepPlan) -> int:
        st, sec = self.st, self.st.section
        ttb = plan.time_to_boundary(plan.t0 + plan.beat_s)
        if plan.boundary_known and plan.next_boundary is not None and 0 < ttb <= plan.beats_per_bar * plan.beat_s:
            return theory.roman_chord(theory.APPROACH[sec.mode], sec.tonic)[0]
        if st.chord_bar + 1 < sec.chord_bars:
            return st.root
        return theory.roman_chord(sec.progression[(st.prog_pos + 1) % len(sec.progression)], sec.tonic)[0]

    def _melody(self, plan: StepPlan, x: float, ev: list[Note]) -> None:
        """A 4-bar phrase: a motif in bar 1, an answer in bar 2, the motif again (on the new harmony) in
        bar 3, a cadence on a held chord tone and a rest in bar 4. Chord tones on strong beats, scale steps
        between, a contour that heads for a target pitch."""
        st, sec, rng = self.st, self.st.section, self.rng
        b, B, beat_s, t0 = plan.beat_in_bar, plan.beats_per_bar, plan.beat_s, plan.t0
        if plan.at_boundary or sec is None or not self._uses_melody(x):
            return
        if plan.boundary_known and plan.time_to_boundary() < 1.2 * beat_s:
            return  # breathe before the cut
        if st.mel_until > t0 + 0.05:
            return  # the last note is still held: one line, one note at a time
        lo, hi = self._mel_range(x)
        bar_in_phrase = (sec.bars - 1) % 4
        if bar_in_phrase == 3 and b >= B // 2:
            return  # the phrase ends: rest
        if b == 0 and bar_in_phrase == 0:
            st.mel_target = _clamp(rng.randint(lo + 3, hi - 3), lo, hi)
            st.motif = {}
        if bar_in_phrase == 3 and b == 0:  # cadence: a chord tone held half a bar
            p = theory.nearest_pitch(st.pcs[rng.choice((0, 0, 1, 2))], st.mel_last, lo, hi)
            self._mel_note(ev, t0, (B // 2) * beat_s * 0.95, p, self._vel(x, 6))
            return
        cells = self._rhythm_cells(x, beat_s)
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
                st.mel_target = _clamp(rng.randint(lo + 2, hi - 2), lo, hi)
            self._mel_note(ev, t0 + self._at(off, plan) * beat_s, dur * beat_s * 0.95 - (self._at(off, plan) - off) * beat_s, p,
                           self._vel(x, 8 + (6 if strong else 0) + self._phrase_swell(sec, b, B)) + self._crescendo(plan, t0))
        if bar_in_phrase == 0:
            st.motif[b] = (ci, tuple(played))

    @staticmethod
    def _phrase_swell(sec: _Section, b: int, B: int) -> int:
        """Dynamics over a 4-bar phrase: rise to the third bar, fall into the cadence."""
        pos = ((sec.bars - 1) % 4 + b / B) / 4.0
        return int(round(8 * math.sin(math.pi * pos))) - 3

    def _rhythm_cells(self, x: float, beat_s: float) -> list[tuple[tuple[tuple[float, float], ...], float]]:
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

    def _mel_note(self, ev: list[Note], t: float, dur: float, p: int, vel: int) -> None:
        self.st.mel_last = p
        self.st.mel_until = t + max(0.06, dur)
        ev.append(Note(t, t + max(0.06, dur), p, _clamp(vel, 1, 127), "melody"))

    def _drums(self, plan: StepPlan, x: float, ev: list[Note]) -> None:
        """One beat of the groove for the arousal; a fill into a known boundary."""
        b, B, beat_s, t0 = plan.beat_in_bar, plan.beats_per_bar, plan.beat_s, plan.t0
        sec = self.st.section
        if x < 0.18 or sec is None:
            return
        vel = self._vel(x, 6) + self._crescendo(plan, t0)
        hits: list[tuple[float, int, int]] = []  # (offset in beats, pitch, velocity offset)
        back = b % 2 == 1  # backbeats: 2 and 4 in 4/4
        ttb = plan.time_to_boundary()
        fill = plan.boundary_known and plan.next_boundary is not None and ttb <= beat_s * 1.01 and x >= 0.35 and not plan.at_boundary
        fill = fill or (x >= 0.45 and b == B - 1 and sec.bars % 8 == 0)
        if fill:
            toms = (D["snare"], D["tom_high"], D["tom_mid"], D["tom_low"])
            n = 4 if beat_s >= 0.3 else 2
            for k in range(n):
                hits.append((k / n, toms[k % 4] if sec.variant % 2 else D["snare"], -10 + 6 * k))
        elif x < 0.35:  # soft: brushed time on the ride (or a shaker), side stick on the backbeat
            if sec.variant % 3 == 2:
                hits += [(0.0, D["shaker"], -30), (0.5, D["shaker"], -38)]
            else:
                hits.append((0.0, D["ride"], -30))
            if back:
                hits.append((0.0, D["side_stick"], -20))
            if b == 0 or (b == B // 2 and sec.variant % 2):
                hits.append((0.0, D["kick"], -18))
        elif x < 0.55:  # half-time: snare only in the middle of the bar
            hat = D["ride"] if sec.variant % 5 == 4 else D["hat_closed"]
            hits += [(0.0, hat, -22), (0.5, hat, -30)]
            if b == 0:
                hits.append((0.0, D["kick"], 0))
            if b == B // 2 and B >= 3:
                hits.append((0.0, D["snare"], 0))
            if b == 1 and sec.variant % 2:
                hits.append((0.5, D["kick"], -10))
            if b == B - 1 and sec.variant % 3 == 2:
                hits.append((0.75, D["kick"], -14))
        elif x < 0.78:  # straight: kick on 1 and 3 (and a variant's pickups), snare on 2 and 4, eighth hats
            hat = D["ride"] if sec.variant % 4 == 3 else D["hat_closed"]
            hits += [(0.0, hat, -18), (0.5, hat, -28)]
            if b % 2 == 0:
                hits.append((0.0, D["kick"], 0))
            else:
                hits.append((0.0, D["snare"], 0))
                if sec.variant % 5 == 1:
                    hits.append((0.0, D["tambourine"], -20))
            kick_extra = ((), ((B - 1, 0.5),), ((1, 0.5),), ((B // 2, 0.5), (B - 1, 0.5)))[sec.variant % 4]
            for kb, ko in kick_extra:
                if b == kb:
                    hits.append((ko, D["kick"], -8))
        else:  # busy: sixteenth hats, syncopated kicks, ghost notes, open hat
            for k in range(4):
                hits.append((k / 4, D["hat_closed"], -16 if k % 2 == 0 else -30))
            if b % 2 == 0:
                hits.append((0.0, D["kick"], 2))
                hits.append((0.75, D["kick"] if sec.variant % 2 else D["snare"], -22))
            else:
                hits.append((0.0, D["snare"], 4))
                hits.append((0.5, D["kick"], -8))
                if sec.variant % 3 == 0:
                    hits.append((0.0, D["clap"], -12))
            if b == B - 1:
                hits.append((0.5, D["hat_open"], -14))
        if b == 0 and not plan.at_boundary and x >= 0.5 and sec.bars % 8 == 1 and sec.bars > 1:
            hits.append((0.0, D["crash"], 4))
        for off, pitch, dv in hits:
            t = t0 + self._at(off, plan) * beat_s
            ev.append(Note(t, t + (0.5 if pitch in (D["crash"], D["hat_open"]) else 0.1), pitch, _clamp(vel + dv, 1, 127), "drums"))

    # ---- output ------------------------------------------------------------------------------
    def _finish(self, plan: StepPlan, ev: list[Note]) -> list[Note]:
        """Keep the notes of [t0, t1), end sustained notes at a known boundary, thin accidental chord onsets."""
        st = self.st
        nb = plan.next_boundary if plan.boundary_known and plan.next_boundary is not None and plan.next_boundary > plan.t0 else None
        out: list[Note] = []
        for n in sorted(ev, key=lambda n: (n.start, n.instrument, n.pitch)):
            if not plan.t0 <= n.start < plan.t1:
                continue
            if nb is not None and n.end > nb and n.start < nb:
                if n.start == plan.t0 and plan.at_boundary:
                    n.end = max(nb - 0.01, n.start + 0.5)  # the hit keeps >= 0.5 s
                else:
                    n.end = nb - 0.005  # a clean cut: nothing of the old shot rings into the new one
            if n.end - n.start < 0.03:
                continue
            n.pitch = _clamp(n.pitch, 0, 127)
            n.velocity = _clamp(n.velocity, 1, 127)
            out.append(n)
        out = self._guard(plan, self._dedupe(out))
        st.recent = [n for n in st.recent if n.start > plan.t0 - 1.0] + [n for n in out if n.instrument != "drums"]
        st.allowed = [t for t in st.allowed if t > plan.t0 - 1.0]
        return sorted(out)

    @staticmethod
    def _dedupe(notes: list[Note]) -> list[Note]:
        """One note per (instrument, pitch, start): the boundary kick and the groove's kick, a pulse on a
        block chord. The longest and loudest survives (a same-key double would be one MIDI key anyway)."""
        best: dict[tuple[str, int, float], Note] = {}
        for n in notes:
            k = (n.instrument, n.pitch, round(n.start, 4))
            if k in best:
                m = best[k]
                m.end, m.velocity = max(m.end, n.end), max(m.velocity, n.velocity)
            else:
                best[k] = n
        return list(best.values())

    def _guard(self, plan: StepPlan, notes: list[Note]) -> list[Note]:
        """Stagger any 3+-pitch-class cluster of long notes that was not meant as a block chord.

        A block chord is intended only at a boundary and where the harmony changes on a downbeat; a
        coincidence of bass, melody and comping elsewhere would count as a chord onset near a random
        moment. The latest-added note of the cluster is delayed by a strum (or shortened when the delay
        would leave the step).
        """
        st = self.st
        allowed = [t for t in st.allowed if abs(t - plan.t0) < 2.0]
        kept: list[Note] = [n for n in st.recent if n.end - n.start >= LONG_S]
        out: list[Note] = []
        order = {"bass": 0, "pad": 1, "melody": 2, "chords": 3}
        for n in sorted(notes, key=lambda n: (n.start, order.get(n.instrument, 4), n.pitch)):
            if n.instrument == "drums" or n.end - n.start < LONG_S or any(abs(n.start - a) < 1e-9 for a in allowed):
                out.append(n)
                if n.instrument != "drums" and n.end - n.start >= LONG_S:
                    kept.append(n)
                continue
            for _ in range(4):
                pcs = {m.pitch % 12 for m in kept if abs(m.start - n.start) <= CLUSTER_S + 1e-9} | {n.pitch % 12}
                if len(pcs) < 3:
                    break
                if n.start + STRUM_S < plan.t1:
                    n.start += STRUM_S
                    n.end += STRUM_S
                else:
                    n.end = n.start + 0.9 * LONG_S
                    break
            out.append(n)
            if n.end - n.start >= LONG_S:
                kept.append(n)
        return out
