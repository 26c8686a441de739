"""Live play: a source watched in real time, its soundtrack played to MIDI ports or a synth as it goes.

The twin of render.py: `play(...)` is what `cuecast live` runs, `LivePlayer(...).play()` the same inside an
asyncio loop the caller owns (several players can share one loop). The wiring: a RealtimeClock from the
frames' arrival, the sender process (RealtimeScheduler) as the sink, with a MidiFileSink beside it for
timeline.json's chord onsets; hints from the config; an optional MIDI clock to follow; an optional live
display; a recording of what was sent.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Sequence

from cuecast.engine.clock import RealtimeClock
from cuecast.engine.config import Config
from cuecast.engine.errors import InputError, UserError
from cuecast.engine.faults import OutputWatch
from cuecast.engine.heap import release_every
from cuecast.engine.hints import hint_sources
from cuecast.engine.pipeline import Engine, EngineState, NoFramesError
from cuecast.engine.scheduler import RealtimeScheduler, SendReport, SenderError
from cuecast.engine.stages import build_stages
from cuecast.engine.sync import follow
from cuecast.engine.timeline import timeline_json, write_json
from cuecast.engine.video_out import LiveVideoOut, check_target
from cuecast.streams.midi_file import MidiFileSink, write_sent
from cuecast.streams.midi_clock_in import MidiClockIn
from cuecast.streams.midi_outputs import parse_output_spec
from cuecast.streams.midi_ports import PortError
from cuecast.streams.synth_live import parse_audio_out
from cuecast.streams.sources import open_source
from cuecast.types import NoteSink, Source, SourceError, Timeline


class TeeSink:
    """One NoteSink feeding several: the scheduler plays, a MidiFileSink keeps the notes."""

    def __init__(self, *sinks: NoteSink):
        self.sinks = sinks

    def tempo(self, t, bpm, beat):
        for s in self.sinks:
            s.tempo(t, bpm, beat)

    def notes(self, notes):
        for s in self.sinks:
            s.notes(notes)

    def cut_at(self, t):
        for s in self.sinks:
            s.cut_at(t)

    def close(self):
        for s in self.sinks:
            s.close()


@dataclass
class LiveResult:
    timeline: Timeline
    state: EngineState  # the engine's last state (frames, dropped, re-plans, ...)
    report: SendReport | None  # what the sender did (lateness, messages), None if it never started
    wall_s: float
    record: Path | None = None
    stopped_by: int | None = None  # the signal that ended the play, if one did
    notes_kept: list = field(default_factory=list)  # with a record only: a night-long run keeps no notes
    video_out: str = ""  # what --video-out wrote (a one-line summary), "" without one
    warnings: list[str] = field(default_factory=list)  # what the input did that the user should know
    fault: str | None = None  # an output lost, the JACK server or the sender gone: one line, exit non-zero

    def summary(self) -> str:
        r = self.report
        lat = r.percentiles_ms() if r else {}
        late_in = max(len(r.handover_late), r.handover_count) if r else 0
        return (f"played {self.wall_s:.1f} s: {self.state.boundaries} boundaries, {self.state.replans} "
                f"re-plans, {lat.get('n', 0)} messages sent, p50 {lat.get('p50', 0):.2f} ms p99 "
                f"{lat.get('p99', 0):.2f} ms after their deadline (sender {r.priority if r else '?'}); {late_in} notes "
                f"reached the sender late; {self.state.dropped} frames dropped"
                + (f"; the generator fell behind: {self.state.skips} skips left out {self.state.skipped_s:.1f} s of "
                   f"music" if self.state.skips else "")
                + (f"; recorded in {self.record}" if self.record else "")
                + (f"\n{self.video_out}" if self.video_out else ""))


class LivePlayer:
    """One live stream: open with the constructor's arguments, then `await play()`.

    source: a spec for open_source (file:PATH, device:..., lavfi:..., or what other modules register) or an
    opened Source. outputs: MIDI output specs (rtmidi:NAME, virtual:NAME, jack:NAME, synth[:FILE.sf2], none).
    record: a folder for sent.mid (what was sent, at its real times) and timeline.json. clock_in: follow an
    external MIDI clock: the music stays on its grid and follows its start, stop and song position (then no MIDI
    clock goes out). link: "lead" (or True) leads an Ableton Link session, "follow" plays to its tempo and beat.
    control: an async function given the Engine once it runs (bridges: engine.apply, engine.subscribe); if it
    fails (a bridge cannot start), the play stops and its error is raised.
    video_out: a file (.mp4, .mkv, .ts) or URL (rtmp://, srt://, udp://) for the input picture delayed by the
    lookahead with the soundtrack under it; mix_input_audio: the input's own sound under the music there
    (None: the config's). audio_out: where the software synth plays (a sound device by index or name, or
    jack[:NAME][?connect=L,R]); it adds the `synth` output when none is given.
    Raises UserError (one line) for a bad output, port, source or folder.
    """

    def __init__(self, cfg: Config, source: str | Source, outputs: Sequence[str], *, record: str | Path | None = None,
                 duration: float | None = None, loop: bool = False, clock_in: str | None = None,
                 link: bool | str | None = None,
                 midi_clock: bool = True, display: bool = False, client_name: str = "cuecast",
                 control: Callable[[Engine], Awaitable[None]] | None = None, video_out: str | None = None,
                 mix_input_audio: float | None = None, audio_out: str | None = None):
        if duration is not None and duration <= 0:
            raise UserError("--duration must be more than 0 seconds")
        outputs = list(outputs)
        try:
            for spec in outputs:
                parse_output_spec(spec)
            if audio_out is not None:
                parse_audio_out(audio_out)
                if not any(parse_output_spec(o).kind == "synth" for o in outputs):
                    outputs.append("synth")
        except PortError as e:
            raise UserError(str(e)) from None
        if not outputs:
            outputs = ["none"] if video_out else []
        if not outputs:
            raise UserError("nothing to play to: give --midi-out, --audio-out or --video-out")
        if video_out is not None:
            check_target(video_out)
        if mix_input_audio is not None and not 0.0 <= mix_input_audio <= 1.0:
            raise UserError(f"--mix-input-audio must be in 0..1, got {mix_input_audio:g}")
        self.video_out, self.mix_input_audio, self.audio_out = video_out, mix_input_audio, audio_out
        self.cfg, self.source_spec, self.outputs = cfg, source, list(outputs)
        self.record = Path(record) if record else None
        link = "lead" if link is True else (link or None)
        if link not in (None, "lead", "follow"):
            raise UserError(f"--link is lead or follow (got {link!r})")
        if link == "follow" and clock_in:
            raise UserError("follow one master: --clock-in or --link follow, not both")
        self.duration, self.loop, self.clock_in, self.link = duration, loop, clock_in, link
        self.midi_clock, self.display, self.client_name, self.control = midi_clock, display, client_name, control
        self.engine: Engine | None = None
        self.scheduler: RealtimeScheduler | None = None
        self.video_summary = ""
        self.stopped_by: int | None = None
        self._stop_asked = False

    # ---- ways out (any thread, signal handlers included) ----
    def stop(self) -> None:
        """End soon: the music ends at the playhead, every note is ended."""
        self._stop_asked = True
        if self.engine is not None:
            self.engine.stop()

    def abort(self, signum: int | None = None) -> None:
        """Silence now (from the sender process), then wind down: Ctrl-C and SIGTERM."""
        if self.stopped_by is None and signum is not None:
            self.stopped_by = signum
        if self.scheduler is not None:
            self.scheduler.abort()
        self.stop()

    # ---- the run ----
    async def play(self) -> LiveResult:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        if self.record is not None:
            try:
                self.record.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UserError(f"cannot write to {self.record}: {e.strerror or e}") from None
        source = self._open_source()
        clock = RealtimeClock(cfg.conductor.lookahead_s)
        follower = None
        display = None
        video = None
        ended = False  # the engine finished (the source ran out, or a stop): the timeline says where the music ends
        try:
            # the ports are checked first (fast); the models load after. Both block: off the loop, so other
            # players sharing it keep going
            self.scheduler = await loop.run_in_executor(None, self._start_sender, clock)
            if self.video_out is not None:
                video = await loop.run_in_executor(None, self._start_video_out, clock, source)
            if self.clock_in:
                follower = MidiClockIn(self.clock_in)
            elif self.link == "follow":
                follower = _link_follower()
            stages = await loop.run_in_executor(None, build_stages, cfg)
            keeper = MidiFileSink() if self.record is not None else None  # the notes, for timeline.json's chords
            sinks = (self.scheduler,) + ((keeper,) if keeper is not None else ()) + ((video.sink,) if video is not None else ())
            sink = self._source_sinks(source, clock, TeeSink(*sinks) if len(sinks) > 1 else self.scheduler)
            engine = self.engine = Engine(cfg, source, sink, clock, stages,
                                          hints=hint_sources(cfg.hints, clock.playhead, token=cfg.control.token),
                                          history=self.record is not None)
            watch = OutputWatch(self.scheduler.status, clock.playhead, engine.stop, lambda: self.scheduler.closed)
            if follower is not None:  # the master's grid: its tempo and bars; silent while it is stopped
                follow(engine, clock, follower)
            if hasattr(source, "watch"):  # a page that shows the engine's state (webrtc)
                source.watch(engine)
            if self._stop_asked:
                engine.stop()
            if self.display:
                from cuecast.engine.display import LiveDisplay  # noqa: PLC0415

                display = LiveDisplay(lambda: engine.state, self.scheduler.status, cfg.conductor.lookahead_s).start()
            timer = loop.call_later(self.duration, self.stop) if self.duration else None
            control = asyncio.create_task(self.control(engine)) if self.control is not None else None
            if control is not None:  # a control that fails (a bridge that cannot start) stops the play
                control.add_done_callback(lambda t: t.cancelled() or t.exception() is None or engine.stop())
            watching = asyncio.create_task(watch.run())
            releasing = asyncio.create_task(release_every(cfg.runtime.heap_release_s))  # flat RSS over hours
            started = time.monotonic()
            try:
                timeline = await engine.run()
            except NoFramesError:
                raise InputError(f"{source.info.name} gave no video frames") from None
            except SourceError as e:
                raise InputError(str(e)) from None
            finally:
                watching.cancel()
                releasing.cancel()
                await asyncio.gather(watching, releasing, return_exceptions=True)
                if timer is not None:
                    timer.cancel()
                if control is not None:
                    control.cancel()
                    await asyncio.gather(control, return_exceptions=True)
                    if not control.cancelled() and isinstance(control.exception(), UserError):
                        raise control.exception()
            wall = time.monotonic() - started
            ended = True
        except PortError as e:
            raise UserError(str(e)) from None
        finally:
            await source.close()  # the engine closed it when it ran; before that, this does
            if self.scheduler is not None:
                self.scheduler.close()  # a no-op when the engine closed it; the last guard otherwise
            if video is not None:  # finished on every way out, so the file plays; it ends where the music does
                end = (timeline.meta.get("stopped_at", timeline.duration) if ended else None)
                await loop.run_in_executor(None, video.close, end)
                self.video_summary = video.summary()
            if follower is not None:
                follower.close()
            if display is not None:
                display.stop()
        report = self.scheduler.report
        if self.record is not None:
            self._write_record(timeline, keeper, clock, started, report, source)
        watch.check()  # a loss in the last moments
        return LiveResult(timeline, engine.state, report, wall, self.record, self.stopped_by,
                          list(keeper.notes) if keeper is not None else [], self.video_summary,
                          list(getattr(source, "warnings", [])), watch.exit_line())

    def _source_sinks(self, source: Source, clock: RealtimeClock, sink: NoteSink) -> NoteSink:
        """What a source adds to the sink: the soundtrack back to a browser (webrtc), and the music held, then
        faded while a live stream is gone (sources that say since when they stalled)."""
        if hasattr(source, "soundtrack_sink"):
            out = self.cfg.output
            sink = TeeSink(sink, source.soundtrack_sink(clock.media_now, self.cfg.instrument_map(), out.soundfont, out.gain))
        if hasattr(source, "stalled_since"):
            from cuecast.engine.stall import FadeOnStall  # noqa: PLC0415

            sink = FadeOnStall(sink, source.stalled_since)
        return sink

    def _open_source(self) -> Source:
        if not isinstance(self.source_spec, str):
            return self.source_spec
        try:
            return open_source(self.source_spec, self.cfg.source, realtime=True, loop=self.loop,
                               keep_picture=self.video_out is not None)
        except SourceError as e:
            raise InputError(str(e)) from None

    def _start_video_out(self, clock: RealtimeClock, source: Source) -> LiveVideoOut:
        """Open the target now (a wrong URL or folder fails before the models load) and tap the source."""
        video = LiveVideoOut(self.cfg, self.video_out, clock, source.info.fps, self.mix_input_audio)
        if not hasattr(source, "tap"):
            video.close(None)
            raise UserError(f"--video-out cannot take the pictures of a {source.info.kind} source")
        source.tap(video.tap)
        return video

    def _start_sender(self, clock: RealtimeClock) -> RealtimeScheduler:
        cfg = self.cfg
        synth = {"soundfont": cfg.output.soundfont, "sample_rate": cfg.output.sample_rate, "gain": cfg.output.gain,
                 "blocksize": cfg.live.synth_block, "audio_out": self.audio_out}
        try:
            return RealtimeScheduler(self.outputs, clock.wall_of, cfg.instrument_map(),
                                     clock_out=cfg.live.clock_out and self.midi_clock and not self.clock_in,
                                     latency_ms=cfg.live.latency_ms, record=self.record is not None,
                                     synth_options=synth, realtime_priority=cfg.live.realtime_priority,
                                     link=self.link == "lead", client_name=self.client_name)
        except SenderError as e:
            raise UserError(str(e)) from None

    def _write_record(self, timeline: Timeline, keeper: MidiFileSink, clock: RealtimeClock, started: float,
                      report: SendReport | None, source: Source) -> None:
        from cuecast.models.music.metrics import chord_onsets  # noqa: PLC0415

        cfg = self.cfg
        timeline.chords = chord_onsets(list(keeper.notes))
        wall0 = clock.wall_of(0.0) if clock.started else started
        write_sent(self.record / "sent.mid", report.log if report else [], wall0)
        name = self.source_spec if isinstance(self.source_spec, str) else self.source_spec.info.name
        meta = {"source": name, "outputs": self.outputs, "generator": cfg.generator.backend,
                "seed": cfg.generator.seed, "lookahead_s": cfg.conductor.lookahead_s, "live": True}
        if report and report.lateness:
            meta.update({f"send_late_{k}_ms": round(v, 3) for k, v in report.percentiles_ms().items() if k != "n"})
        if hasattr(source, "meta"):  # network and webrtc: reconnects and gaps, frames, what the browser heard
            meta["stream"] = source.meta()
        write_json(self.record / "timeline.json", timeline_json(timeline, **meta))


def _link_follower():
    import importlib.util  # noqa: PLC0415

    if importlib.util.find_spec("aalink") is None:
        raise UserError("Ableton Link needs the aalink package: pip install 'cuecast[link]'")
    from cuecast.engine.sync import LinkFollower  # noqa: PLC0415

    return LinkFollower()


def play(cfg: Config, source: str | Source, outputs: Sequence[str], **options) -> LiveResult:
    """Play live until the source ends, `duration` passes, or Ctrl-C / SIGTERM (which silence at once and
    are reported in LiveResult.stopped_by). Options as LivePlayer's. Call from the main thread."""
    player = LivePlayer(cfg, source, outputs, **options)

    def on_signal(signum, frame):
        if player.stopped_by is not None:  # a second Ctrl-C: stop waiting for anything
            raise KeyboardInterrupt
        player.abort(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return asyncio.run(player.play())
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def print_summary(result: LiveResult) -> None:
    print(result.summary(), file=sys.stderr)
