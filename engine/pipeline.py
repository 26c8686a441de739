"""The asyncio engine: source -> cuts + emotion -> conductor -> generator -> sink.

Decoding runs in its own thread and feeds a bounded queue (offline it waits for the analysis; live it
drops the oldest frames, never blocking the loop). Analysis and planning run one item at a time on a
single worker thread, so the event loop stays free for hints and control, and the stages see frames in order.
The same engine renders offline (FastClock) and plays live (RealtimeClock).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Iterable

from cuecast.engine.conductor import Conductor
from cuecast.engine.config import Config
from cuecast.models.music.theory import tempo_for_arousal
from cuecast.types import AudioChunk, Boundary, EmotionWindow, Frame, NoteSink, Timeline

_END = object()


@dataclass
class EngineState:
    """What a live display shows; written by the worker, read by anyone."""

    t_in: float = 0.0
    t_play: float = 0.0
    frames: int = 0
    dropped: int = 0
    valence: float = 0.0
    arousal: float = 0.0
    probs: tuple[float, ...] = ()
    tempo: float = 0.0
    bar: int = 0
    beat_in_bar: int = 0
    next_boundary: float | None = None
    next_boundary_known: bool = True
    boundaries: int = 0
    replans: int = 0
    analysis_ms: float = 0.0  # last frame's analysis cost
    last_cut_arrival: float | None = None  # wall time the last unplanned cut's frame arrived
    events: list[str] = field(default_factory=list)


class LiveQueue:
    """The live input queue: at most `frames` video frames wait; when one more comes, the oldest frame goes,
    with the audio queued before it. Audio chunks do not count against the frames: about two come with
    every frame, and counted they pushed frames out of a 2-frame queue whenever an analysis ran late."""

    def __init__(self, frames: int):
        self.items: asyncio.Queue = asyncio.Queue()  # unbounded: offer() bounds the frames, audio rides along
        self.limit = max(1, frames)
        self.frames = 0

    def offer(self, item) -> int:
        """Queue an item without waiting (the loop's thread); returns how many frames it pushed out."""
        dropped = 0
        if isinstance(item, Frame):
            while self.frames >= self.limit:
                if isinstance(self.items.get_nowait(), Frame):
                    self.frames -= 1
                    dropped += 1
            self.frames += 1
        self.items.put_nowait(item)
        return dropped

    async def put(self, item) -> None:
        self.offer(item)

    async def get(self):
        item = await self.items.get()
        if isinstance(item, Frame):
            self.frames -= 1
        return item


class Stages:
    """The per-frame analysis stages, built from the config (see build_stages)."""

    def __init__(self, detector, emotion, forecaster, generator):
        self.detector = detector
        self.emotion = emotion
        self.forecaster = forecaster
        self.generator = generator


class Engine:
    def __init__(self, cfg: Config, source: Iterable[Frame | AudioChunk], sink: NoteSink, clock, stages: Stages,
                 hints: Iterable[AsyncIterator[Boundary]] = (), tempo_for: Callable[[float], float] | None = None):
        self.cfg = cfg
        self.source = source
        self.sink = sink
        self.clock = clock
        self.stages = stages
        self.hints = list(hints)
        self.conductor = Conductor(cfg.conductor, stages.generator, sink, tempo_for or _default_tempo(cfg))
        self.timeline = Timeline()
        self.state = EngineState()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cuecast-analysis")
        # Live, emotion runs beside the cut path so a slow face pass never delays a cut's chord. Offline it
        # runs in step with the frames, which keeps the render a pure function of the input and the seed.
        self._emotion_pool = (concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cuecast-emotion")
                              if clock.realtime and stages.emotion is not None else None)
        self._stop = threading.Event()
        self._emotion_error: BaseException | None = None
        self._last_frame_t: float | None = None
        self._frame_dt = 1 / 25
        self._early_cut: float | None = None  # a hard-cut candidate acted on before the detector confirmed it

    def stop(self) -> None:
        """Ask the engine to end soon (Ctrl-C, --duration); run() then finishes cleanly."""
        self._stop.set()

    async def run(self, progress: Callable[[float], None] | None = None) -> Timeline:
        loop = asyncio.get_running_loop()
        n = self.cfg.source.queue_frames  # offline the reader waits for room; live old frames make room
        queue = LiveQueue(n) if self.clock.realtime else asyncio.Queue(maxsize=n)
        reader = threading.Thread(target=self._read, args=(loop, queue), name="cuecast-source", daemon=True)
        tasks: list[asyncio.Task] = []
        closed = False
        try:
            reader.start()
            tasks = [asyncio.create_task(self._follow_hints(h)) for h in self.hints]
            if self.clock.realtime:
                tasks.append(asyncio.create_task(self._tick()))
            while True:
                item = await queue.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                await loop.run_in_executor(self._pool, self._analyse, item)
                if progress is not None and isinstance(item, Frame):
                    progress(item.t)
                if self._stop.is_set():
                    break
            await loop.run_in_executor(self._pool, self._finish)
            closed = True
            return self.timeline
        finally:
            self._stop.set()
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            if self._emotion_pool is not None:
                self._emotion_pool.shutdown(wait=True, cancel_futures=True)
            self._pool.shutdown(wait=True)
            if not closed:
                self.sink.close()  # error or cancel: never leave a note sounding

    # ---- source thread ---------------------------------------------------------------------------
    def _read(self, loop: asyncio.AbstractEventLoop, queue) -> None:
        def offer(item) -> None:  # live: the newest input matters, the oldest waiting frame goes
            self.state.dropped += queue.offer(item)

        try:
            for item in self.source:
                if self._stop.is_set():
                    break
                if self.clock.realtime:
                    if isinstance(item, Frame):
                        self.clock.anchor(item.t, time.monotonic())  # its arrival, before it waits in the queue
                    loop.call_soon_threadsafe(offer, item)
                else:
                    asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()
            final = _END
        except BaseException as e:  # handed to the loop, which raises it
            final = e
        try:
            asyncio.run_coroutine_threadsafe(queue.put(final), loop).result()
        except RuntimeError:
            pass  # the loop is gone: the engine already ended

    # ---- worker thread: analysis and planning ----------------------------------------------------
    def _analyse(self, item: Frame | AudioChunk) -> None:
        st = self.stages
        if isinstance(item, AudioChunk):
            if st.emotion is not None:
                self._emotion(st.emotion.process_audio, item)
            if st.forecaster is not None:
                st.forecaster.add_audio(item)
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
            self._emotion(st.emotion.process_frame, frame, then=self._take_emotion)
        if st.forecaster is not None:
            forecast = st.forecaster.update(frame, boundaries)
            if forecast is not None:
                self.conductor.set_forecast(forecast)
                if self.cfg.conductor.lookahead_s == 0 and self.cfg.conductor.use_forecast:
                    self.timeline.forecasts.append(forecast)
        self.state.frames += 1
        self.state.t_in = frame.t
        self._plan()
        self.state.analysis_ms = (time.perf_counter() - started) * 1000

    def _take_boundaries(self, boundaries: list[Boundary]) -> bool:
        """Hand boundaries to the conductor; True when one forced a re-plan."""
        replanned = False
        for b in boundaries:
            self.timeline.boundaries.append(b)
            if self.stages.emotion is not None:
                self._emotion(self.stages.emotion.observe_cut, b.t)
            now = self.clock.playhead() if self.clock.realtime else None
            if self.conductor.add_boundary(b, now=now):
                replanned = True
                self.state.replans += 1
                self.state.last_cut_arrival = time.monotonic()
        self.state.boundaries = len(self.timeline.boundaries)
        return replanned

    def _take_early_cut(self, frame: Frame) -> bool:
        """The detector confirms a hard cut one frame after it. With less lookahead than one frame that is
        after the cut is on screen, so the conductor takes the cut on its own frame; the confirmation is
        then the same event and changes nothing. True when it forced a re-plan."""
        t = self.stages.detector.hard_candidate(frame.t)
        if t is None:
            return False
        self._early_cut = t
        now = self.clock.playhead() if self.clock.realtime else None
        if not self.conductor.add_boundary(Boundary(t=t, kind="hard", decided_at=frame.t), now=now):
            return False
        self.state.replans += 1
        self.state.last_cut_arrival = time.monotonic()
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
            self.timeline.emotion.append(w)
            self.conductor.add_emotion(w)
            self.state.valence, self.state.arousal, self.state.probs = w.valence, w.arousal, w.probs

    def _plan(self) -> None:
        t_play = self.clock.playhead()
        self.state.t_play = t_play
        self.conductor.advance(t_play + self.cfg.conductor.horizon_s)
        c = self.conductor
        self.state.tempo = c.tempo_map[-1][1] if c.tempo_map else 0.0
        self.state.bar = c.beat // c.cfg.beats_per_bar
        self.state.beat_in_bar = c.beat_in_bar
        nxt = next((p for p in c.boundaries if p.t >= t_play), None)
        self.state.next_boundary = None if nxt is None else nxt.t
        self.state.next_boundary_known = True if nxt is None else nxt.known

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
        if not self._stop.is_set() or not self.clock.realtime:
            self.conductor.finish(duration)
        else:
            self.sink.cut_at(self.clock.playhead())
        self.sink.close()
        tl = self.timeline
        tl.duration = duration
        tl.tempo = list(self.conductor.tempo_map)
        tl.meta["replans"] = self.conductor.replans
        tl.meta["frames"] = self.state.frames
        tl.meta["dropped_frames"] = self.state.dropped

    async def _follow_hints(self, hints: AsyncIterator[Boundary]) -> None:
        loop = asyncio.get_running_loop()
        async for b in hints:
            await loop.run_in_executor(self._pool, self._take_boundaries, [b])

    async def _tick(self) -> None:
        """Live: keep the music going ahead of the playhead even when frames stall."""
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            await asyncio.sleep(0.02)
            if self.clock.started:
                await loop.run_in_executor(self._pool, self._plan)


class NoFramesError(Exception):
    pass


def _default_tempo(cfg: Config) -> Callable[[float], float]:
    lo, hi = cfg.conductor.tempo_min, cfg.conductor.tempo_max
    return lambda arousal: tempo_for_arousal(arousal, lo, hi)
