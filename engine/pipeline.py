"""The asyncio engine: source -> cuts + emotion -> conductor -> generator -> sink.

The engine knows only the stage protocols (cuecast.types): it awaits items from a Source (which owns its
decoding thread, its queue and the live drop rule), and runs analysis and planning one item at a time on
a single worker thread, so the event loop stays free for hints and control, and the stages see frames in
order. The clock says how time runs: as fast as the work goes (render, FastClock) or with the wall (live,
RealtimeClock). Several engines can share one event loop: an engine holds no global state.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Iterable

from cuecast.engine.conductor import Conductor
from cuecast.engine.control import Control, Subscription
from cuecast.engine.config import Config
from cuecast.engine.faults import warn_line
from cuecast.types import (AudioChunk, Boundary, Clock, EmotionWindow, EndOfStream, Frame, NoteSink, Source,
                           Stages, Timeline)


RECENT_BOUNDARIES = 64  # boundaries a history-less timeline keeps (the display and the summary count all)
# A plan that takes longer than this (live, a generator slower than real time) holds the frames that arrive
# meanwhile; they are analysed first, without a plan each, before the next plan (for as long as the plan took
# at most): a step planned for every queued frame kept them waiting longer still, and a clip's last frames
# took minutes. A quicker plan changes nothing.
SLOW_PLAN_S = 0.25
# Live, frames that may wait for the emotion thread (2 s of 25 fps video). An estimator slower than the picture
# (a starved machine, faces in every frame) then reads fewer frames instead of queueing them without end: each
# waiting frame holds its picture, and an hour behind would be gigabytes and music about the past.
EMOTION_BACKLOG = 50


@dataclass
class EngineState:
    """A snapshot of what the engine hears and plays (a display, a state bridge); written by the worker."""

    t_in: float = 0.0
    t_play: float = 0.0
    frames: int = 0
    dropped: int = 0
    valence: float = 0.0
    arousal: float = 0.0
    probs: tuple[float, ...] = ()
    neutral: float = 0.0  # share of the last window that reads as no emotion in particular (beside probs)
    tempo: float = 0.0
    bar: int = 0
    beat_in_bar: int = 0
    next_boundary: float | None = None
    next_boundary_known: bool = True
    boundaries: int = 0
    replans: int = 0
    skips: int = 0  # live: times the music skipped ahead to the playhead because the generator fell behind
    skipped_s: float = 0.0  # the media seconds of music those skips left out
    analysis_ms: float = 0.0  # last frame's analysis cost


class Engine:
    """One stream's engine. run() consumes the source to its end (or stop()) and returns the Timeline.

    tempo_for: arousal -> bpm (the conductor's mapping unless given). hints: async iterators of Boundary
    (MQTT, OSC, OBS, ...). The sink is closed exactly once, on every way out. history=False (a live run
    that records nothing) keeps only the recent boundaries in the timeline and no emotion windows or forecasts:
    a night-long run stays flat in memory.
    """

    def __init__(self, cfg: Config, source: Source, sink: NoteSink, clock: Clock, stages: Stages,
                 hints: Iterable[AsyncIterator[Boundary]] = (), tempo_for: Callable[[float], float] | None = None,
                 history: bool = True):
        self.cfg = cfg
        self.history = history
        self.source = source
        self.sink = sink
        self.clock = clock
        self.stages = stages
        self.hints = list(hints)
        self.conductor = Conductor(cfg.conductor, stages.generator, sink, tempo_for, now=clock.editable_from,
                                   history=history)
        self.timeline = Timeline()
        self.state = EngineState()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cuecast-analysis")
        # Live, emotion runs beside the cut path so a slow face pass never delays a cut's chord. Offline it
        # runs in step with the frames, which keeps the render a pure function of the input and the seed.
        self._emotion_pool = (concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cuecast-emotion")
                              if clock.realtime and stages.emotion is not None else None)
        self._stop = threading.Event()
        self._wake: asyncio.Event | None = None  # set with _stop, so a wait for the next item ends at once
        self._loop: asyncio.AbstractEventLoop | None = None
        self._emotion_error: BaseException | None = None
        self._emotion_lock = threading.Lock()
        self._emotion_waiting = 0  # frames handed to the emotion thread, not yet read
        self._emotion_skipped = 0  # frames not handed over because EMOTION_BACKLOG were waiting
        self._last_frame_t: float | None = None
        self._plan_ended = 0.0  # time.monotonic() when the last plan ended, and how long it took
        self._plan_cost = 0.0
        self._backlog = False  # the frame in hand waited through a slow plan
        self._frame_dt = 1 / 25
        self._early_cut: float | None = None  # a hard-cut candidate acted on before the detector confirmed it
        self.control = Control(cfg).attach(self)
        self._failed: BaseException | None = None  # a background task that must not die did

    def stop(self) -> None:
        """Ask the engine to end soon (Ctrl-C, --duration); run() then finishes cleanly. Any thread may call it."""
        self._stop.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:
                pass  # the loop already ended

    async def apply(self, command) -> None:
        """Apply a validated command (cuecast.control) on the analysis thread, between two frames, so it
        never races the conductor; CommandError when it cannot be applied."""
        command = await self.control.prepare(command)
        await asyncio.get_running_loop().run_in_executor(self._pool, self.control.apply, command)

    def subscribe(self, maxsize: int = 256) -> Subscription:
        """State snapshots (several a second) and boundary / beat events (cuecast.control), for bridges and
        overlays, on the caller's loop. A subscriber that falls behind loses the oldest, never slows the engine."""
        return self.control.subscribe(maxsize)

    def tap(self, fn) -> Callable[[], None]:
        """Call fn with every event the moment it is published, on the engine's thread (fn must be quick and
        never block): for a bridge whose timing matters. Returns the undo."""
        return self.control.tap(fn)

    async def run(self, progress: Callable[[float], None] | None = None) -> Timeline:
        loop = self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self._stop.is_set():
            self._wake.set()
        waker = asyncio.create_task(self._wake.wait())
        tasks = [self._watched(self._follow_hints(h), f"hint source {i + 1}") for i, h in enumerate(self.hints)]
        tasks.append(self._watched(self.clock.keep_time(self._plan_async, self._stop.is_set), None))
        closed = False
        try:
            while not self._stop.is_set():
                nxt = asyncio.ensure_future(self.source.recv())
                await asyncio.wait({nxt, waker}, return_when=asyncio.FIRST_COMPLETED)
                if not nxt.done():
                    nxt.cancel()
                    await asyncio.gather(nxt, return_exceptions=True)
                    break
                try:
                    item = nxt.result()
                except EndOfStream:
                    break
                if isinstance(item, Frame):
                    self.clock.arrived(item.t, item.arrived or time.monotonic())
                    self._backlog = (self.clock.editable_from() is not None  # live: the playhead moves on its own
                                     and self._plan_cost > SLOW_PLAN_S and item.arrived < self._plan_ended)
                await loop.run_in_executor(self._pool, self._analyse, item)
                if isinstance(item, Frame):
                    self.state.dropped = self.source.dropped
                    if progress is not None:
                        progress(item.t)
            if self._failed is not None:
                raise self._failed  # the planner died: a clear stop (the sink is closed below), not silence
            await loop.run_in_executor(self._pool, self._finish)
            closed = True
            return self.timeline
        finally:
            self._stop.set()
            for t in (waker, *tasks):
                t.cancel()
            await asyncio.gather(waker, *tasks, return_exceptions=True)
            await self.source.close()
            if self._emotion_pool is not None:
                self._emotion_pool.shutdown(wait=True, cancel_futures=True)
            self._pool.shutdown(wait=True)
            if not closed:
                self.sink.close()  # error or cancel: never leave a note sounding
            self.control.close()  # the subscribers' streams end

    # ---- worker thread: analysis and planning ----------------------------------------------------
    def _analyse(self, item: Frame | AudioChunk) -> None:
        st = self.stages
        if isinstance(item, AudioChunk):
            if st.emotion is not None:
                self._emotion(st.emotion.process_audio, item)
            if st.forecaster is not None:
                st.forecaster.process_audio(item)
            return
        if self._emotion_error is not None:
            raise self._emotion_error
        started = time.perf_counter()
        frame = item
        if self._last_frame_t is not None and frame.t > self._last_frame_t:
            self._frame_dt = 0.9 * self._frame_dt + 0.1 * min(1.0, frame.t - self._last_frame_t)
        self._last_frame_t = frame.t
        boundaries = st.detector.process_frame(frame)
        self.clock.observe(frame.t)
        self._check_early_cut(boundaries)
        replanned = self._take_boundaries(boundaries)
        if self.cfg.conductor.lookahead_s < self._frame_dt and self._take_early_cut(frame):
            replanned = True
        if replanned:
            self._plan()  # an unplanned cut: the boundary chord goes out before anything else is analysed
        if st.emotion is not None:
            self._emotion_frame(frame)
        if st.forecaster is not None:
            forecast = st.forecaster.process_frame(frame, boundaries)
            if forecast is not None:
                self.conductor.set_forecast(forecast)
                if self.cfg.conductor.lookahead_s == 0 and self.cfg.conductor.use_forecast and self.history:
                    self.timeline.forecasts.append(forecast)
        self.state.frames += 1
        self.state.t_in = frame.t
        if not self._backlog:
            self._plan()
        self.state.analysis_ms = (time.perf_counter() - started) * 1000

    def _take_boundaries(self, boundaries: list[Boundary]) -> bool:
        """Hand boundaries to the conductor; True when one forced a re-plan."""
        replanned = False
        for b in boundaries:
            self.timeline.boundaries.append(b)
            self.state.boundaries += 1
            if not self.history and len(self.timeline.boundaries) > 2 * RECENT_BOUNDARIES:
                del self.timeline.boundaries[:-RECENT_BOUNDARIES]
            if self.stages.emotion is not None:
                self._emotion(self.stages.emotion.observe_cut, b.t)
            if self.conductor.add_boundary(b, now=self.clock.editable_from()):
                replanned = True
                self.state.replans += 1
        return replanned

    def _take_early_cut(self, frame: Frame) -> bool:
        """The detector confirms a hard cut one frame after it. With less lookahead than one frame that is
        after the cut is on screen, so the conductor takes the cut on its own frame; the confirmation is
        then the same event and changes nothing. True when it forced a re-plan."""
        t = self.stages.detector.hard_candidate(frame.t)
        if t is None:
            return False
        self._early_cut = t
        if not self.conductor.add_boundary(Boundary(t=t, kind="hard", decided_at=frame.t), now=self.clock.editable_from()):
            return False
        self.state.replans += 1
        return True

    def _check_early_cut(self, boundaries: list[Boundary]) -> None:
        """Count early cuts the detector then refused (a glitch frame): their chord has already sounded."""
        if self._early_cut is None or self.stages.detector.hard_pending:
            return
        if not any(abs(b.t - self._early_cut) < 1e-6 for b in boundaries):
            self.timeline.meta["early_cuts_refused"] = self.timeline.meta.get("early_cuts_refused", 0) + 1
        self._early_cut = None

    def _emotion(self, fn, arg, then=None) -> None:
        """Call an emotion-estimator method in step (offline) or on the emotion thread (live)."""
        if self._emotion_pool is None:
            out = fn(arg)
            if then is not None:
                then(out)
            return
        fut = self._emotion_pool.submit(fn, arg)
        if then is not None:
            fut.add_done_callback(lambda f: self._hand_back(then, f))

    def _emotion_frame(self, frame: Frame) -> None:
        if self._emotion_pool is None:
            self._emotion(self.stages.emotion.process_frame, frame, then=self._take_emotion)
            return
        with self._emotion_lock:
            if self._emotion_waiting >= EMOTION_BACKLOG:
                self._emotion_skipped += 1
                return
            self._emotion_waiting += 1
        self._emotion(self._read_emotion_frame, frame, then=self._take_emotion)

    def _read_emotion_frame(self, frame: Frame) -> list[EmotionWindow]:
        """On the emotion thread: a waiting frame is read."""
        with self._emotion_lock:
            self._emotion_waiting -= 1
        return self.stages.emotion.process_frame(frame)

    def _hand_back(self, then, fut: concurrent.futures.Future) -> None:
        if fut.cancelled():
            return
        if fut.exception() is not None:
            self._emotion_error = fut.exception()  # raised on the analysis thread with the next frame
            return
        try:
            self._pool.submit(then, fut.result())  # the conductor is only touched from the analysis thread
        except RuntimeError:
            pass  # the engine is shutting down

    def _take_emotion(self, windows: list[EmotionWindow]) -> None:
        for w in windows:
            if self.history:
                self.timeline.emotion.append(w)
            self.conductor.add_emotion(w)
            self.state.valence, self.state.arousal, self.state.probs = w.valence, w.arousal, w.probs
            self.state.neutral = w.neutral

    def _plan(self) -> None:
        started = time.monotonic()
        try:
            self._plan_now()
        finally:
            self._plan_ended = time.monotonic()
            self._plan_cost = self._plan_ended - started

    def _plan_now(self) -> None:
        t_play = self.clock.playhead()
        self.state.t_play = t_play
        self.conductor.advance(t_play + self.cfg.conductor.horizon_s)
        s = self.conductor.status(t_play)
        st = self.state
        self._count_skips()
        st.tempo, st.bar, st.beat_in_bar = s.tempo, s.bar, s.beat_in_bar
        st.next_boundary, st.next_boundary_known = s.next_boundary, s.next_boundary_known
        self.control.observe(st)

    def _count_skips(self) -> None:
        """Say once that the generator fell behind real time; the counts go to the state and the summary."""
        c, st = self.conductor, self.state
        if c.skips and not st.skips:
            warn_line(f"the music generator is slower than real time: the music skips ahead to the playhead "
                      f"(at {c.cursor:.1f} s; the summary counts the skips)")
        st.skips, st.skipped_s = c.skips, c.skipped_s

    async def _plan_async(self) -> None:
        if self._backlog and time.monotonic() - self._plan_ended < self._plan_cost:
            return  # the frames held by the last (slow) plan first, for as long as it held them at most
        await asyncio.get_running_loop().run_in_executor(self._pool, self._plan)

    def _finish(self) -> None:
        st = self.stages
        if self._last_frame_t is None:
            self.sink.close()
            raise NoFramesError("the input has no video frames")
        self._take_boundaries(st.detector.flush())
        if st.emotion is not None:
            if self._emotion_pool is not None:
                self._take_emotion(self._emotion_pool.submit(st.emotion.flush).result())
            else:
                self._take_emotion(st.emotion.flush())
        duration = self._last_frame_t + self._frame_dt
        end = self.clock.stop_at(self._stop.is_set())
        if end is None:
            self.conductor.finish(duration)
            self._count_skips()
        else:
            self.sink.cut_at(end)
            self.timeline.meta["stopped_at"] = end  # where the music ended (a video out ends there too)
        self.sink.close()
        tl = self.timeline
        tl.duration = duration
        tl.tempo = list(self.conductor.tempo_map)
        tl.meta["replans"] = self.conductor.replans
        if self.conductor.skips:
            tl.meta["skips"], tl.meta["skipped_s"] = self.conductor.skips, round(self.conductor.skipped_s, 3)
        tl.meta["frames"] = self.state.frames
        tl.meta["dropped_frames"] = self.source.dropped
        if self._emotion_skipped:
            tl.meta["emotion_frames_skipped"] = self._emotion_skipped

    def _watched(self, work, name: str | None) -> asyncio.Task:
        """A background task whose death is never silent: a named one (a hint source) is a warning and the
        music goes on without it; an unnamed one (the planner) stops the run with its error."""
        task = asyncio.create_task(work)

        def done(t: asyncio.Task) -> None:
            if t.cancelled() or t.exception() is None:
                return
            e = t.exception()
            if name is None:
                self._failed = e
                self.stop()
            else:
                warn_line(f"{name} stopped ({type(e).__name__}: {e}); the music goes on without it")

        task.add_done_callback(done)
        return task

    async def _follow_hints(self, hints: AsyncIterator[Boundary]) -> None:
        loop = asyncio.get_running_loop()
        async for b in hints:
            await loop.run_in_executor(self._pool, self.control.hint, b)


class NoFramesError(Exception):
    pass
