"""The `arranger` generator: a music-theory arranger driven one beat at a time (cuecast.types.Generator).

Each beat: the harmony (harmony.py: a hit on a cut, a new chord on a downbeat), then the parts, each in a
module of its own (comp, bass, melody, drums), shaped by arousal (feel.py: density, loudness, register,
groove). Arousal moves everything a listener hears as energy; valence picks mode, key and progression.
Around a known cut: an approach chord and a crescendo in the bar before it, a drum fill into it, the
melody breathes; on it, the hit (harmony.boundary_hit); nothing of the old shot rings past it.
"""

from __future__ import annotations

import copy
import random

from cuecast.models.music.arranger import bass, comp, drums, harmony, melody
from cuecast.models.music.arranger.state import State, clamp
from cuecast.models.music.config import GeneratorConfig
from cuecast.types import Note, StepPlan

MIN_NOTE_S = 0.03  # shorter than this is a click, not a note


class Arranger:
    """Music-theory generator (cuecast.types.Generator)."""

    name = "arranger"

    def __init__(self, cfg: GeneratorConfig | None = None):
        self.cfg = cfg or GeneratorConfig()
        self.reset(self.cfg.seed)

    def reset(self, seed: int) -> None:
        self.seed = int(seed)
        self.rng = random.Random(self.seed)
        self.st = State()
        self._snapshots: list[tuple[float, State, object]] = []

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

    def step(self, plan: StepPlan) -> list[Note]:
        if not (plan.t1 > plan.t0 and plan.tempo_bpm > 0 and plan.beats_per_bar >= 1):
            raise ValueError(f"bad StepPlan: t0={plan.t0} t1={plan.t1} tempo={plan.tempo_bpm}; need t1 > t0, tempo > 0")
        self._snapshots.append((plan.t0, copy.deepcopy(self.st), self.rng.getstate()))
        del self._snapshots[:-64]
        x = (min(1.0, max(-1.0, plan.arousal)) + 1.0) / 2.0  # arousal as 0..1
        downbeat = plan.beat_in_bar == 0 and plan.on_grid or plan.at_boundary
        ev: list[Note] = []
        if plan.at_boundary:
            harmony.boundary_hit(self, plan, x, ev)
        elif self.st.section is None or downbeat:
            harmony.downbeat(self, plan, x, ev)
        for part in (comp, bass, melody, drums):
            part.play(self, plan, x, ev)
        return finish(plan, ev)


def finish(plan: StepPlan, ev: list[Note]) -> list[Note]:
    """The notes of [t0, t1), one per key and start; sustained notes end at a known boundary."""
    nb = plan.next_boundary if plan.boundary_known and plan.next_boundary is not None and plan.next_boundary > plan.t0 else None
    out: list[Note] = []
    for n in sorted(ev, key=lambda n: (n.start, n.instrument, n.pitch)):
        if not plan.t0 <= n.start < plan.t1:
            continue
        if nb is not None and n.end > nb and n.start < nb:
            if n.start == plan.t0 and plan.at_boundary:
                n.end = max(nb - 0.01, n.start + harmony.HIT_MIN_S)  # the hit rings even into a quick next cut
            else:
                n.end = nb - 0.005  # a clean cut: nothing of the old shot rings into the new one
        if n.end - n.start < MIN_NOTE_S:
            continue
        n.pitch = clamp(n.pitch, 0, 127)
        n.velocity = clamp(n.velocity, 1, 127)
        out.append(n)
    return sorted(dedupe(out))


def dedupe(notes: list[Note]) -> list[Note]:
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
