"""Remote control of a running engine: commands applied on the analysis thread, state and events published.

`Control` sits around the conductor's generator and sink (it sees every step planned and every re-plan)
and around its tempo choice. What it does with a command:

- mood: the steps planned from now on get the given valence/arousal instead of the picture's (the tempo
  follows the arousal too) until the hold runs out or a release; the published state shows it.
- intensity: notes are thinned (drums, melody, then bass; chords and pads stay) and softened; 1 = as generated.
- tempo: the conductor holds that tempo from the next beat and stops bending it to land cuts; cut chords
  then land off the beat grid, on the cut.
- mute / panic: everything sounding ends now (the sender's cut); muted steps produce no notes, but beats,
  bars and boundaries go on being planned and published, so a VJ rig stays in time.
- generator: the new generator is built off the analysis thread, then takes over at the next step.
- cut: a hint, through the same gate as the hint sources (engine/hints.py: merged, rate-limited, past dropped).

Events go to every subscriber's own bounded queue (a slow bridge loses old states, never blocks the engine).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
import threading
import time
from collections import deque
from typing import Callable

from cuecast.control import (BeatEvent, BoundaryEvent, Command, CommandError, CutHint, Event, LockTempo, Mute,
                             Panic, ReleaseMood, Replan, SetIntensity, SetMood, State, SwitchGenerator)
from cuecast.engine.hints import HintGate, Warnings
from cuecast.types import Boundary, Note, StepPlan

STATE_HZ = 10.0  # state snapshots per second (the MQTT topic promises at least 4)
MOOD_SECTION_STEP = 0.5  # |dvalence| + |darousal| from which a mood command starts a new section
_CLOSED = object()


class Subscription:
    """One subscriber's events, as an async iterator; created on (and read from) its own event loop."""

    def __init__(self, hub: "Hub", maxsize: int):
        self._hub = hub
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._max = maxsize
        self.dropped = 0

    def _put(self, ev) -> None:  # on the subscriber's loop
        if ev is not _CLOSED and self._queue.qsize() >= self._max:
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(ev)

    def offer(self, ev) -> bool:
        """From any thread; False when the subscriber's loop is gone."""
        try:
            self._loop.call_soon_threadsafe(self._put, ev)
            return True
        except RuntimeError:
            return False

    def __aiter__(self):
        return self

    async def __anext__(self) -> Event:
        ev = await self._queue.get()
        if ev is _CLOSED:
            raise StopAsyncIteration
        return ev

    def close(self) -> None:
        self._hub.unsubscribe(self)
        self.offer(_CLOSED)


class Hub:
    """Fans events out to subscribers; remembers the latest state for newcomers."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._taps: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()
        self.latest: State | None = None

    def subscribe(self, maxsize: int = 256) -> Subscription:
        sub = Subscription(self, maxsize)
        with self._lock:
            self._subs.append(sub)
        if self.latest is not None:
            sub.offer(self.latest)
        return sub

    def tap(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        """Call fn with every event on the publishing thread, at once (no event loop in between: for a bridge
        whose timing matters, like OSC's). fn must be quick and must not raise. Returns the undo."""
        with self._lock:
            self._taps.append(fn)
        return lambda: self._untap(fn)

    def _untap(self, fn) -> None:
        with self._lock:
            if fn in self._taps:
                self._taps.remove(fn)

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def publish(self, ev: Event) -> None:
        if isinstance(ev, State):
            self.latest = ev
        with self._lock:
            subs, taps = list(self._subs), list(self._taps)
        for fn in taps:
            try:
                fn(ev)
            except Exception:  # a tap must never take the engine down
                self._untap(fn)
        for s in subs:
            if not s.offer(ev):
                self.unsubscribe(s)

    def close(self) -> None:
        with self._lock:
            subs, self._subs = self._subs, []
        for s in subs:
            s.offer(_CLOSED)


@dataclasses.dataclass
class _Mood:
    valence: float
    arousal: float
    until: float | None  # media time; None: until released


class _Voice:
    """The conductor's generator as Control sees it (cuecast.types.Generator)."""

    def __init__(self, control: "Control", inner):
        self.control, self.inner = control, inner

    @property
    def name(self) -> str:
        return self.inner.name

    def reset(self, seed: int) -> None:
        self.inner.reset(seed)

    def rewind(self, t: float) -> None:
        self.inner.rewind(t)

    def step(self, plan: StepPlan) -> list[Note]:
        return self.control._step(self.inner, plan)


class _Watch:
    """The conductor's sink as Control sees it: re-plans void the events after them."""

    def __init__(self, control: "Control", inner):
        self.control, self.inner = control, inner

    def tempo(self, t, bpm, beat):
        self.inner.tempo(t, bpm, beat)

    def notes(self, notes):
        self.inner.notes(notes)

    def cut_at(self, t):
        self.inner.cut_at(t)
        self.control._voided(t)

    def close(self):
        self.inner.close()


class Control:
    """Commands in, events out, for one engine (attach() it before the engine runs)."""

    def __init__(self, cfg, *, make_generator: Callable | None = None, warnings: Warnings | None = None,
                 state_hz: float = STATE_HZ):
        self.cfg = cfg
        self.hub = Hub()
        self.warnings = warnings or Warnings()
        self.gate = HintGate(cfg.conductor.min_boundary_gap_s, self.warnings)
        self._make_generator = make_generator
        self.state_every = 1.0 / state_hz
        self.mood: _Mood | None = None
        self.intensity = 1.0
        self.muted = False
        self.transport: Callable[[], bool] | None = None  # an external master's start/stop (engine/sync.py)
        self.paused = False  # the master is stopped: silent, as muted
        self.engine = None
        self._beats: deque[tuple[float, int, int, float]] = deque(maxlen=64)  # (t, bar, beat 1-based, bpm)
        self._bar = 0
        self._next_state = 0.0

    # ---- wiring ----
    def attach(self, engine) -> "Control":
        self.engine = engine
        c = engine.conductor
        c.generator = _Voice(self, c.generator)
        c.sink = _Watch(self, c.sink)
        base = c.tempo_for
        c.tempo_for = lambda arousal: base(self.mood.arousal if self._mood_now() else arousal)
        return self

    def subscribe(self, maxsize: int = 256) -> Subscription:
        return self.hub.subscribe(maxsize)

    def tap(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        return self.hub.tap(fn)

    def close(self) -> None:
        self.hub.close()

    # ---- helpers ----
    def _now(self) -> float:
        return self.engine.clock.playhead()

    def _wall(self, t: float) -> float:
        wall_of = getattr(self.engine.clock, "wall_of", None)
        try:
            return wall_of(t) if wall_of is not None else math.nan
        except RuntimeError:
            return math.nan

    def _mood_now(self, t: float | None = None) -> bool:
        m = self.mood
        if m is None:
            return False
        if m.until is not None and (self._now() if t is None else t) >= m.until:
            return False
        return True

    @property
    def generator_name(self) -> str:
        g = self.engine.conductor.generator
        return getattr(g, "name", "?")

    # ---- commands (async side) ----
    async def prepare(self, cmd: Command) -> Command:
        """Work a command needs before it can be applied, done off the analysis thread (a generator loads)."""
        if isinstance(cmd, SwitchGenerator):
            from cuecast.models.music.config import BACKENDS

            if cmd.name not in BACKENDS:
                raise CommandError(f"generator: unknown {cmd.name!r} (choose {', '.join(BACKENDS)})")
            gen_cfg = dataclasses.replace(self.cfg.generator, backend=cmd.name)
            make = self._make_generator
            if make is None:
                from cuecast.engine.stages import make_generator as make
            loop = asyncio.get_running_loop()
            try:
                gen = await loop.run_in_executor(None, make, gen_cfg)
            except Exception as e:
                raise CommandError(f"generator {cmd.name}: {e}"[:200]) from None
            return _Swap(gen)
        return cmd

    # ---- commands (analysis thread) ----
    def apply(self, cmd) -> None:
        c = self.engine.conductor
        if isinstance(cmd, (SetMood, ReleaseMood)):
            before = self._mood_at_cursor()
            if isinstance(cmd, SetMood):
                until = None if cmd.hold_s is None else self._now() + cmd.hold_s
                self.mood = _Mood(cmd.valence, cmd.arousal, until)
            else:
                self.mood = None
            self._new_section(before)
        elif isinstance(cmd, SetIntensity):
            self.intensity = cmd.value
        elif isinstance(cmd, LockTempo):
            c.tempo_lock = cmd.bpm
        elif isinstance(cmd, Mute):
            if cmd.on and not self.muted:
                self._silence()
            self.muted = cmd.on
        elif isinstance(cmd, Panic):
            self._silence()
        elif isinstance(cmd, _Swap):
            c.generator.inner = cmd.generator
        elif isinstance(cmd, CutHint):
            self.hint(self._boundary_of(cmd))
        elif isinstance(cmd, SwitchGenerator):
            raise CommandError("generator: prepare() the switch first")
        else:
            raise CommandError(f"not a command: {type(cmd).__name__}")
        self._next_state = 0.0  # the next plan publishes the state at once

    def _mood_at_cursor(self) -> tuple[float, float]:
        c = self.engine.conductor
        if self._mood_now(c.cursor):
            return self.mood.valence, self.mood.arousal
        return c._emotion_at(c.cursor)

    def _new_section(self, before: tuple[float, float]) -> None:
        """A mood that moved far is a new section: a soft boundary at the next step, where the generator may
        change key and mode (a film cue changing mood) instead of waiting for the next phrase or cut."""
        after = self._mood_at_cursor()
        if abs(after[0] - before[0]) + abs(after[1] - before[1]) < MOOD_SECTION_STEP:
            return
        c = self.engine.conductor
        c.add_boundary(Boundary(t=c.cursor, kind="mood", source="control", decided_at=self._now()), now=self._now())

    def _boundary_of(self, cmd: CutHint) -> Boundary:
        arrived = self._now() - max(0.0, time.monotonic() - cmd.sent_wall)  # the playhead when it came in
        t = cmd.t if cmd.t is not None else arrived + cmd.in_s
        return Boundary(t=t, kind="hint", source=cmd.source, decided_at=arrived, confidence=cmd.confidence)

    def hint(self, b: Boundary) -> bool:
        """A cut hint through the gate into the engine (analysis thread). True when it became a boundary."""
        if not self.gate.admit(b, self._now(), [p.t for p in self.engine.conductor.boundaries]):
            return False
        if self.engine._take_boundaries([b]):
            self.engine._plan()  # an unplanned cut: its chord goes out now
        return True

    def _silence(self) -> None:
        """Every sounding note ends now; what was planned after now is dropped."""
        self.engine.conductor.sink.cut_at(self._now())

    # ---- what the conductor plans (analysis thread) ----
    def _step(self, gen, plan: StepPlan) -> list[Note]:
        if self._mood_now(plan.t0):
            plan = dataclasses.replace(plan, valence=self.mood.valence, arousal=self.mood.arousal)
        notes = gen.step(plan)
        self._beat(plan)
        if plan.at_boundary:
            self._boundary(plan)
        if self.muted or self.paused:
            return []
        if self.intensity < 1.0:
            notes = self._shape(notes, plan)
        return notes

    def _beat(self, plan: StepPlan) -> None:
        if abs(self.engine.conductor.beat_started - plan.t0) > 1e-6:
            return  # a step inside a beat (split by a cut that fell off the grid)
        if plan.beat_in_bar == 0:
            self._bar += 1
        beat = (max(self._bar, 1), plan.beat_in_bar + 1)
        self._beats.append((plan.t0, *beat, plan.tempo_bpm))
        self.hub.publish(BeatEvent(plan.t0, self._wall(plan.t0), beat[0], beat[1], plan.tempo_bpm))

    def _boundary(self, plan: StepPlan) -> None:
        landed = self.engine.conductor.landed
        p = landed[-1] if landed and abs(landed[-1].t - plan.t0) < 1e-4 else None
        cut = plan.t0 if p is None or p.cut is None else p.cut
        self.hub.publish(BoundaryEvent(t=cut, kind=plan.boundary_kind, source=p.source if p else "detector",
                                       chord_t=plan.t0, chord_wall=self._wall(plan.t0), decided_at=None))

    def _shape(self, notes: list[Note], plan: StepPlan) -> list[Note]:
        """Fewer and softer notes at lower intensity; the boundary chord and the harmony stay."""
        x = self.intensity
        keep_p = {"drums": x, "melody": x, "bass": 0.3 + 0.7 * x}
        vel = 0.45 + 0.55 * x
        out = []
        for n in notes:
            chord_here = plan.at_boundary and n.start - plan.t0 < 0.05
            p = keep_p.get(n.instrument, 1.0)
            if not chord_here and p < 1.0 and _unit_hash(n) >= p:
                continue
            out.append(dataclasses.replace(n, velocity=max(1, int(round(n.velocity * vel)))))
        return out

    def _voided(self, t: float) -> None:
        """A re-plan (or a panic) dropped what was planned from t: so are the beats planned there."""
        while self._beats and self._beats[-1][0] >= t - 1e-6:
            self._beats.pop()
        self._bar = self._beats[-1][1] if self._beats else 0
        self.hub.publish(Replan(t, self._wall(t)))

    # ---- state (analysis thread, after every plan) ----
    def observe(self, es) -> None:
        if self.transport is not None:
            running = self.transport()
            if not running and not self.paused:
                self._silence()  # the master stopped: so do we, at once
            self.paused = not running
        wall = time.monotonic()
        if wall < self._next_state:
            return
        self._next_state = wall + self.state_every
        self.hub.publish(self.snapshot(es, wall))

    def snapshot(self, es, wall: float | None = None) -> State:
        t = es.t_play
        bar = beat = 0
        phase = 0.0
        bpm = es.tempo
        for tb, b_bar, b_beat, b_bpm in reversed(self._beats):
            if tb <= t + 1e-6:
                bar, beat, bpm = b_bar, b_beat, b_bpm
                phase = min(0.999, max(0.0, (t - tb) * b_bpm / 60.0))
                break
        held = self._mood_now(t)
        v, a = (self.mood.valence, self.mood.arousal) if held else (es.valence, es.arousal)
        nb = es.next_boundary
        return State(t=t, valence=v, arousal=a, probs=tuple(es.probs), tempo_bpm=bpm, bar=bar, beat=beat,
                     beat_phase=phase, next_boundary_in=None if nb is None else max(0.0, nb - t),
                     next_boundary_known=es.next_boundary_known, generator=self.generator_name,
                     muted=self.muted or self.paused, intensity=self.intensity, mood_held=held,
                     tempo_locked=self.engine.conductor.tempo_lock is not None,
                     wall=time.monotonic() if wall is None else wall)


@dataclasses.dataclass(frozen=True)
class _Swap:
    """A generator switch, ready to take over (built by Control.prepare)."""

    generator: object


def _unit_hash(n: Note) -> float:
    """A stable 0..1 number per note: thinning is the same for the same music, run after run."""
    h = hashlib.blake2b(f"{n.instrument}:{n.pitch}:{round(n.start * 1000)}".encode(), digest_size=4).digest()
    return int.from_bytes(h, "big") / 2**32
