"""The conductor: the musical plan — tempo, bars, and where every boundary falls.

It turns the boundary stream (detected cuts, hints, forecasts) and the emotion windows into StepPlans,
one per beat, and hands them to the generator. Like a film composer tempo-mapping a cue, it bends the tempo
by a few percent so that a beat lands on a cut it knows is coming; where no beat is reachable, the
boundary chord lands off the grid, on the cut. Every boundary starts a new bar (a new phrase for a new shot).
When a cut arrives inside music already generated (no lookahead, or a surprise), it re-plans from there.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Callable

from cuecast.engine.config import ConductorConfig
from cuecast.models.music.theory import tempo_for_arousal
from cuecast.types import Boundary, EmotionWindow, Forecast, Generator, Note, NoteSink, StepPlan, TempoPoint

EPS = 1e-6
# Emotion windows older than this (behind the newest) can no longer be asked for: the playhead is at most
# the lookahead (<= 30 s) behind the newest frame. Forgetting them keeps a night-long run flat in memory.
EMOTION_MEMORY_S = 90.0
LANDED_MEMORY = 8  # landed boundaries looked back at (same-cut checks use the last 4)
# Tempo points a history-less conductor keeps (a live run that records nothing): the planner reads only the
# newest, a re-plan drops those after a cut near the playhead; the whole map is for timeline.json.
RECENT_TEMPO_POINTS = 64
# A chord this close to a cut is that cut's chord: the tolerance of the chord-on-cut measure (±100 ms).
SAME_CUT_S = 0.1
# Live, music this far behind the playhead is not generated: it would be played late, all at once, and a
# generator slower than real time would fall further behind with every step. The plan skips to the playhead.
# Less than this is played (a little late) rather than lost: the first step after start-up is often that late.
BEHIND_S = 0.25


@dataclass
class _Planned:
    t: float
    kind: str
    known: bool  # False for a forecast the conductor chose to plan for
    source: str = "detector"  # who reported it ("forecast" for the conductor's own speculative plans)
    cut: float | None = None  # the cut's own time, when it came too late to land there (t is then later)

    def near(self, t: float, tol: float) -> bool:
        """Within tol of t, by where it lands or by the cut it stands for."""
        return abs(self.t - t) <= tol or (self.cut is not None and abs(self.cut - t) <= tol)


@dataclass(frozen=True, slots=True)
class ConductorStatus:
    """Where the music is, for displays and state snapshots (Conductor.status)."""

    tempo: float  # bpm now; 0 before the first beat
    bar: int  # counting from 0
    beat_in_bar: int
    next_boundary: float | None  # media time of the next planned boundary at or after the asked time
    next_boundary_known: bool  # False when that boundary is a forecast
    replans: int


def arousal_tempo(cfg: ConductorConfig) -> Callable[[float], float]:
    """The tempo the music takes for an arousal in [-1, 1], within the config's tempo range."""
    lo, hi = cfg.tempo_min, cfg.tempo_max
    return lambda arousal: tempo_for_arousal(arousal, lo, hi)


class Conductor:
    """tempo_for: arousal -> bpm (arousal_tempo(cfg) unless given: an external clock's tempo, say)."""

    def __init__(self, cfg: ConductorConfig, generator: Generator, sink: NoteSink,
                 tempo_for: Callable[[float], float] | None = None, now: Callable[[], float | None] | None = None,
                 history: bool = True):
        self.cfg = cfg
        self.history = history  # False: keep only the recent tempo map (a night-long live run stays flat)
        # live: the media time playing now (music before it has been played); None offline, where nothing is late
        self.now = now or (lambda: None)
        self.skips = 0  # times the plan skipped ahead to the playhead (the generator fell behind real time)
        self.skipped_s = 0.0  # media seconds of music those skips left out
        self.generator = generator
        self.sink = sink
        self.tempo_for = tempo_for or arousal_tempo(cfg)
        self.cursor = 0.0  # music exists up to here
        self.next_beat = 0.0
        self.beat = 0
        self.beat_in_bar = 0
        self.tempo: float | None = None
        self.boundaries: list[_Planned] = []  # sorted, not yet reached by the cursor
        self.landed: list[_Planned] = []  # boundaries the music already started a chord on
        self.emotion: list[EmotionWindow] = []  # the recent windows, in time order (EMOTION_MEMORY_S)
        self._emotion_mids: list[float] = []  # their middles, for bisect
        self.forecast: Forecast | None = None
        self.tempo_map: list[TempoPoint] = []
        self.replans = 0
        self.end: float | None = None  # set by finish(): no step runs past the end
        # a tempo held from outside (a musician's lock, an external clock): no glide, no bends to land cuts,
        # and the beat grid runs on through boundaries (their chords land off the grid, on the cut)
        self.tempo_lock: float | None = None
        # an external clock's beat grid (MIDI clock in, a Link session): media time t -> (bpm, media time of its
        # next beat after t, that beat's index from the master's song start), or None while it is not running
        self.grid: Callable[[float], tuple[float, float, int] | None] | None = None
        self.beat_started = 0.0  # media time the current beat began (a step may start inside a beat)

    # ---- inputs -------------------------------------------------------------------------------
    def add_emotion(self, window: EmotionWindow) -> None:
        mid = (window.start + window.end) / 2
        if self._emotion_mids and mid < self._emotion_mids[-1]:  # out of order: keep the list sorted
            i = bisect.bisect_right(self._emotion_mids, mid)
            self.emotion.insert(i, window)
            self._emotion_mids.insert(i, mid)
        else:
            self.emotion.append(window)
            self._emotion_mids.append(mid)
        old = bisect.bisect_left(self._emotion_mids, self._emotion_mids[-1] - EMOTION_MEMORY_S)
        if old > 64:  # forget in batches: one slice now and then, not a shift per window
            del self.emotion[:old], self._emotion_mids[:old]

    def set_forecast(self, forecast: Forecast | None) -> None:
        self.forecast = forecast

    def add_boundary(self, b: Boundary, now: float | None = None) -> bool:
        """Take a real boundary (detector or hint) into the plan. Returns True when it forced a re-plan.

        `now` is the earliest media time that can still change (the playhead live; None offline, where
        everything not yet written can change). Every real cut gets its chord: only a chord already at the
        cut (within SAME_CUT_S), or the same event reported by another source, makes it redundant.
        """
        t = b.t
        twin = self._same_event(t, b.source)
        if twin is not None:
            self._confirm(twin, t, b.source)
            return False
        self._drop_forecasts_near(t)  # a real cut replaces the guesses around it
        # a cut inside music already generated is re-planned from the cut (or from now, if that is past)
        t_from = t if now is None or t >= self.cursor - EPS else max(t, now)
        planned = _Planned(t_from, b.kind, True, b.source, cut=t)
        if t_from >= self.cursor - EPS:
            bisect.insort(self.boundaries, planned, key=lambda p: p.t)
            return False
        self._replan(planned)
        return True

    def _same_event(self, t: float, source: str) -> _Planned | None:
        """The planned or landed boundary that already stands for a cut at t, if any (a pure query).

        Any boundary within SAME_CUT_S: the music hits the cut there. A real one from another source within
        min_boundary_gap_s: the same event seen twice (a hint and the detector's view of one transition).
        """
        gap = self.cfg.min_boundary_gap_s
        for p in self.boundaries + self.landed[-4:]:
            if p.near(t, SAME_CUT_S):
                return p
            if p.known and p.source != source and p.near(t, gap - EPS):
                return p
        return None

    def _confirm(self, p: _Planned, t: float, source: str) -> None:
        """A forecast the music planned for turned out real: it is known now, at the real time if not yet played."""
        if p.known:
            return
        p.known, p.source = True, source
        if any(q is p for q in self.boundaries) and t >= self.cursor - EPS:
            self.boundaries.remove(p)
            p.t = t
            bisect.insort(self.boundaries, p, key=lambda q: q.t)

    def _drop_forecasts_near(self, t: float) -> None:
        gap = self.cfg.min_boundary_gap_s
        self.boundaries = [p for p in self.boundaries if p.known or abs(p.t - t) >= gap]

    def _replan(self, p: _Planned) -> None:
        t = p.t
        self.replans += 1
        self.sink.cut_at(t)
        self.generator.rewind(t)
        self.tempo_map = [p for p in self.tempo_map if p.t < t - EPS]
        self.landed = [q for q in self.landed if q.t < t - EPS]
        self.boundaries = [q for q in self.boundaries if q.known and q.t > t + EPS]
        self.boundaries.insert(0, p)
        self.cursor = t
        self.next_beat = t

    def status(self, t: float) -> ConductorStatus:
        """The tempo, bar and beat the music has reached, and the next boundary at or after media time t."""
        nxt = next((p for p in self.boundaries if p.t >= t), None)
        return ConductorStatus(
            tempo=self.tempo_map[-1].bpm if self.tempo_map else 0.0, bar=self.beat // self.cfg.beats_per_bar,
            beat_in_bar=self.beat_in_bar, next_boundary=None if nxt is None else nxt.t,
            next_boundary_known=True if nxt is None else nxt.known, replans=self.replans)

    # ---- planning -----------------------------------------------------------------------------
    def advance(self, t_until: float) -> list[Note]:
        """Generate every step that starts before t_until; returns the new notes (also sent to the sink)."""
        new: list[Note] = []
        if self.end is not None:  # after finish() a late caller (the live planner) may ask past the end
            t_until = min(t_until, self.end)
        while self.cursor < t_until - EPS:
            self._catch_up()
            if self.cursor >= t_until - EPS:
                break
            before = self.cursor
            new.extend(self._step())
            if self.cursor <= before:  # a step that cannot move time would spin here forever
                break
        return new

    def _catch_up(self) -> None:
        """Live: when the plan is behind the playhead (the generator is slower than real time), drop the music
        for time already past and go on from the next beat line after now, or from now with the chord of a cut
        that was skipped. Notes already sent are whole (each carries its end), so nothing is left sounding."""
        now = self.now()
        if now is None or self.cursor >= now - BEHIND_S:
            return
        late = [p for p in self.boundaries if p.t < now - EPS]
        self.boundaries = [p for p in self.boundaries if p.t >= now - EPS]
        cut = next((p for p in reversed(late) if p.known), None)  # the newest real cut skipped: its chord, late
        target = now if cut is not None or not self.tempo_map or self.grid is not None else self._beat_line_after(now)
        if self.boundaries:
            target = min(target, self.boundaries[0].t)
        if self.end is not None:
            target = min(target, self.end)
        if target <= self.cursor + EPS:
            return
        if cut is not None:
            self.boundaries.insert(0, _Planned(target, cut.kind, True, cut.source, cut=cut.cut if cut.cut is not None else cut.t))
        self.skips += 1
        self.skipped_s += target - self.cursor
        self._move_grid(target)
        self.cursor = target

    def _grid_after_cursor(self) -> tuple[float, float]:
        """(beat length, the first beat line after the cursor) of the grid the music is on."""
        beat_s = 60.0 / self.tempo_map[-1].bpm
        return beat_s, (self.next_beat if self.next_beat > self.cursor + EPS else self.cursor + beat_s)

    def _beat_line_after(self, t: float) -> float:
        """The first line of the current beat grid at or after t."""
        beat_s, line = self._grid_after_cursor()
        return line + max(0, math.ceil((t - line) / beat_s - EPS)) * beat_s

    def _move_grid(self, target: float) -> None:
        """Count the beats of a skipped stretch, so bars and the MIDI clock's beat numbers stay where they were."""
        if not self.tempo_map or self.grid is not None:  # no grid yet, or the master's: its next beat is asked for
            self.next_beat = target
            return
        beat_s, line = self._grid_after_cursor()
        while line <= target + EPS:
            self.beat += 1
            self.beat_in_bar = (self.beat_in_bar + 1) % self.cfg.beats_per_bar
            line += beat_s
        self.next_beat = target if abs(line - beat_s - target) < EPS else line
        self.beat_started = self.next_beat - beat_s if self.next_beat > target + EPS else target

    def _emotion_at(self, t: float) -> tuple[float, float]:
        if not self.emotion:
            return 0.0, 0.0
        # the newest window whose middle is not after t; the first one before any
        i = max(bisect.bisect_right(self._emotion_mids, t) - 1, 0)
        shot = max((p.t for p in self.landed if p.t <= t + EPS), default=None)
        if shot is not None and self.emotion[i].start < shot - EPS:
            i = self._shot_window(i, shot)
        w = self.emotion[i]
        return w.valence, w.arousal

    def _shot_window(self, i: int, shot: float) -> int:
        """The window that speaks for the shot starting at `shot`, where window i (centred on now) mixes the shot before
        the cut into it.

        The new shot's own first window (known ahead with lookahead), so the section the cut opens takes its key and
        pace from its own picture, not from the one it left. A shot shorter than a window has no window of its own: the
        first one starting at its cut reads up to a window of the shots after the next cut, and turned the music major
        up to 2 s before a fast-cut dark passage ended (EMOTION_MODEL_CARD.md, sixteenth pass). Such a shot keeps
        window i, which reads at most half a window ahead, as every moment between cuts does."""
        own = next((k for k in range(i, len(self.emotion)) if self.emotion[k].start >= shot - EPS), i)
        nxt = next((p.t for p in self.boundaries if p.known and p.t > shot + EPS), None)
        return i if nxt is not None and self.emotion[own].end > nxt + EPS else own

    def _speculative(self, t0: float) -> _Planned | None:
        """The forecast cut worth planning for when the lookahead does not reach the next one (a pure query)."""
        f = self.forecast
        if not (self.cfg.use_forecast and f is not None):
            return None
        t, p = f.most_likely()
        horizon = max(1.0, self.cfg.lookahead_s)
        if t <= t0 + EPS or t - t0 > 8.0 or p * len(f.hazard) < 1e-9:
            return None
        if f.probability_by(t - f.t + f.bin_s) < self.cfg.forecast_threshold:
            return None
        if self.cfg.lookahead_s > 0 and t <= f.t + horizon:
            return None  # within the lookahead, the detector will know for sure
        gap = self.cfg.min_boundary_gap_s
        if any(abs(q.t - t) < gap for q in self.landed[-2:]):
            return None
        if any(q.known and abs(q.t - t) < gap for q in self.boundaries):
            return None
        return _Planned(t, "forecast", False, "forecast")

    def _follow_forecast(self, t0: float) -> None:
        """Re-plan the speculative boundary from the newest forecast: it moves with it, or goes."""
        self.boundaries = [p for p in self.boundaries if p.known]
        known = next((p for p in self.boundaries if p.t > t0 + EPS), None)
        if self.cfg.lookahead_s > 0 and known is not None:
            return  # the lookahead already shows the next cut
        spec = self._speculative(t0)
        if spec is not None and (known is None or spec.t < known.t - self.cfg.min_boundary_gap_s):
            bisect.insort(self.boundaries, spec, key=lambda p: p.t)

    def _next_boundary(self, t0: float) -> _Planned | None:
        return next((p for p in self.boundaries if p.t > t0 + EPS), None)

    def _target_tempo(self, t0: float, free: bool) -> float:
        if self.tempo_lock is not None:
            return self.tempo_lock
        _, arousal = self._emotion_at(t0)
        target = min(self.cfg.tempo_max, max(self.cfg.tempo_min, self.tempo_for(arousal)))
        if self.tempo is None or free:
            return target
        step = 0.06 * self.tempo  # glide between bars; a new scene may jump
        return min(self.tempo + step, max(self.tempo - step, target))

    def _step(self) -> list[Note]:
        t0 = self.cursor
        at_boundary = bool(self.boundaries) and abs(self.boundaries[0].t - t0) < 1e-4
        kind = "hard"
        on_grid = True
        if at_boundary:
            p = self.boundaries.pop(0)
            kind = p.kind
            on_grid = abs(self.next_beat - t0) < 1e-4
            self.landed.append(p)
            del self.landed[:-LANDED_MEMORY]
            if self.tempo_lock is None and self.grid is None:
                self.next_beat = t0  # the boundary is the downbeat of a new bar
                self.beat_in_bar = 0
        outside = self.grid(t0) if self.grid is not None and abs(self.next_beat - t0) < 1e-4 else None
        if abs(self.next_beat - t0) < 1e-4:
            self.beat_started = t0
        if outside is not None:  # a beat starts here, on the master's grid: its tempo, its bar
            self._on_grid(t0, *outside)
        elif abs(self.next_beat - t0) < 1e-4:  # a beat starts here
            relock = self.tempo_lock is not None and self.tempo != self.tempo_lock
            if self.beat_in_bar == 0 or self.tempo is None or relock:
                self.tempo = self._target_tempo(t0, free=at_boundary or self.tempo is None)
            beat_s = 60.0 / self.tempo
            self._follow_forecast(t0)
            nxt = self._next_boundary(t0)
            if nxt is not None:
                beat_s = self._landing_beat(t0, nxt.t, beat_s)
            self.next_beat = t0 + beat_s
            bpm = 60.0 / beat_s
            self._set_tempo(t0, bpm)
        nxt = self._next_boundary(t0)
        t1 = self.next_beat if nxt is None else min(self.next_beat, nxt.t)
        if self.end is not None:
            t1 = min(t1, self.end)
        valence, arousal = self._emotion_at(t0)
        plan = StepPlan(
            t0=t0, t1=t1, tempo_bpm=self.tempo_map[-1].bpm, beat=self.beat, beat_in_bar=self.beat_in_bar,
            beats_per_bar=self.cfg.beats_per_bar, valence=valence, arousal=arousal,
            next_boundary=None if nxt is None else nxt.t, boundary_known=True if nxt is None else nxt.known,
            at_boundary=at_boundary, boundary_kind=kind, on_grid=on_grid,
        )
        notes = self.generator.step(plan)
        self.cursor = t1
        if abs(t1 - self.next_beat) < 1e-6:
            self.beat += 1
            self.beat_in_bar = (self.beat_in_bar + 1) % self.cfg.beats_per_bar
        if notes:
            self.sink.notes(notes)
        return notes

    def _on_grid(self, t0: float, bpm: float, next_t: float, index: int) -> None:
        """Follow an external clock: the next beat is the master's (the first one may come early, which brings
        our beats into its phase); no bends to land cuts."""
        beat_s = 60.0 / bpm
        if next_t - t0 < 0.25 * beat_s:  # too short a beat to play: the one after
            next_t, index = next_t + beat_s, index + 1
        if abs(next_t - beat_s - t0) > 0.03:  # t0 is not the master's beat (we lock on, or a re-plan from a cut):
            self.beat_started = next_t - beat_s  # this step is the rest of the master's beat, not a beat of its own
        self.tempo = bpm
        self.beat_in_bar = (index - 1) % self.cfg.beats_per_bar
        self._follow_forecast(t0)
        self.next_beat = next_t
        self._set_tempo(t0, bpm)

    def _set_tempo(self, t0: float, bpm: float) -> None:
        """A new tempo point from t0, when the tempo changes (a glide, a bend that lands a cut on a beat)."""
        if self.tempo_map and abs(self.tempo_map[-1].bpm - bpm) <= 1e-3:
            return
        self.tempo_map.append(TempoPoint(t0, bpm, float(self.beat)))
        if not self.history and len(self.tempo_map) > 2 * RECENT_TEMPO_POINTS:
            del self.tempo_map[:-RECENT_TEMPO_POINTS]  # in batches: one slice now and then
        self.sink.tempo(t0, bpm, float(self.beat))

    def _landing_beat(self, t0: float, tb: float, beat_s: float) -> float:
        """Beat length that puts a beat exactly on tb, if a tempo bend within the limit does it."""
        k = round((tb - t0) / beat_s)
        if k < 1 or self.tempo_lock is not None or self.grid is not None:
            return beat_s
        bent = (tb - t0) / k
        bpm = 60.0 / bent
        if abs(bent / beat_s - 1.0) <= self.cfg.max_tempo_nudge and self.cfg.tempo_min * 0.9 <= bpm <= self.cfg.tempo_max * 1.1:
            return bent
        return beat_s

    def finish(self, duration: float) -> None:
        """Generate to the end and end every note by the duration."""
        self.boundaries = [p for p in self.boundaries if p.t < duration - 0.05]
        self.end = duration
        self.advance(duration)
        self.sink.cut_at(duration)
        self.landed = [p for p in self.landed if p.t < duration]
