"""`cuecast live`: watch a video source in real time and play its soundtrack to MIDI ports or a synth."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

from cuecast.engine.clock import RealtimeClock
from cuecast.engine.commands.common import add_engine_options, config_from_args, duration_value
from cuecast.engine.compose import channel_map
from cuecast.engine.errors import InputError, UserError
from cuecast.engine.pipeline import Engine, NoFramesError
from cuecast.engine.scheduler import RealtimeScheduler, SenderError, write_record
from cuecast.engine.hints import hint_sources
from cuecast.engine.stages import build_stages
from cuecast.engine.timeline import timeline_json, write_json
from cuecast.streams.midi_file import MidiFileSink
from cuecast.models.music.theory import tempo_for_arousal
from cuecast.streams.midi_out import MidiClockIn, PortError, parse_output_spec
from cuecast.streams.video import FileSource, SourceError

HELP = "play a soundtrack live for a video source, to MIDI ports, JACK or a software synth"
DESCRIPTION = """\
Watch a video source at real-time pace and play music that follows its emotion and its cuts, keeping time
like a sequencer: notes go out at wall-clock deadlines from a separate real-time sender, with MIDI clock
(24 ppqn, start, stop, song position) following the tempo. On the end, Ctrl-C, SIGTERM, an error or a
lost port, every sounding note is ended (note-offs, then all-notes-off, all-sound-off, sustain-off).

sources:
  file:PATH          a video file played at real-time pace (--loop to repeat); a bare path works too
  device:/dev/video0 a capture device (v4l2 on Linux, avfoundation on macOS, dshow on Windows)
  lavfi:testsrc      an FFmpeg test pattern (no hardware needed)

outputs (--midi-out, several allowed):
  rtmidi:NAME        an existing MIDI port, by name or part of it (`cuecast ports` lists them)
  virtual:NAME       a new virtual port others can connect to (Windows: use loopMIDI and rtmidi:NAME)
  jack:NAME          a JACK MIDI port (connected to the JACK input port NAME if given)
  synth              a General MIDI software synth (FluidSynth) to the sound device; synth:FILE.sf2
  none               play nothing (display only)

The sender runs in its own process at real-time priority where the OS allows it; `--clock-in` follows
an external MIDI clock's tempo instead of sending one; `--link` leads an Ableton Link session (other
Link apps follow the music's tempo, including the bends that land beats on cuts). Exit status: 0 at the end of the source or of
--duration, 130 after Ctrl-C, 143 after SIGTERM, 2 for a user error (a missing port, file or device).

examples:
  cuecast live --source file:movie.mp4 --midi-out virtual:cuecast
  cuecast live --source device:/dev/video0 --midi-out rtmidi:Minilogue --lookahead 0
  cuecast live --source file:clip.mp4 --midi-out synth --record out/ --duration 60"""


def add_arguments(p) -> None:
    p.add_argument("--source", required=True, metavar="SPEC", help="file:PATH, device:PATH or lavfi:GRAPH")
    p.add_argument("--midi-out", action="append", required=True, metavar="SPEC", dest="midi_out",
                   help="rtmidi:NAME, virtual:NAME, jack:NAME, synth or none (repeat for several)")
    add_engine_options(p)
    p.add_argument("--record", metavar="DIR", help="write what was sent (sent.mid, real send times) and timeline.json here")
    p.add_argument("--duration", type=str, metavar="SECONDS", help="stop after this many seconds (at most a week)")
    p.add_argument("--loop", action="store_true", help="play a file source again and again")
    p.add_argument("--no-clock", action="store_true", help="do not send MIDI clock")
    p.add_argument("--clock-in", metavar="SPEC",
                   help="follow the tempo of an external MIDI clock on rtmidi:NAME, jack:NAME or virtual:NAME "
                        "(the music's tempo follows it; MIDI clock out is then off)")
    p.add_argument("--link", action="store_true",
                   help="also lead an Ableton Link session with the music's tempo and beat "
                        "(needs the link extra: pip install 'cuecast[link]')")
    p.add_argument("-q", "--quiet", action="store_true", help="no live display")


def open_source(spec: str, cfg, loop: bool):
    kind, sep, rest = spec.partition(":")
    try:
        if kind in ("device", "lavfi") and sep:
            from cuecast.streams.device import DeviceSource  # noqa: PLC0415

            return DeviceSource(rest, kind=kind, analysis_width=cfg.source.analysis_width)
        path = rest if kind == "file" and sep else spec
        if not Path(path).exists():
            raise InputError(f"no such file: {path} (sources: file:PATH, device:PATH, lavfi:GRAPH)")
        return FileSource(path, cfg.source.analysis_width, audio=cfg.source.audio, realtime=True, loop=loop,
                          threads=cfg.source.decode_threads)
    except SourceError as e:
        raise InputError(str(e)) from None


class TeeSink:
    """The scheduler plays; a MidiFileSink keeps the notes for timeline.json's chord onsets."""

    def __init__(self, *sinks):
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


def run(args) -> int:
    cfg = config_from_args(args)
    if args.duration is not None:
        args.duration = duration_value(args.duration)
    try:
        for spec in args.midi_out:
            parse_output_spec(spec)
    except PortError as e:
        raise UserError(str(e)) from None
    record = Path(args.record) if args.record else None
    if record is not None:
        try:
            record.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot write to {record}: {e.strerror or e}") from None
    source = open_source(args.source, cfg, args.loop)
    clock = RealtimeClock(cfg.conductor.lookahead_s)
    synth = {"soundfont": cfg.output.soundfont, "sample_rate": cfg.output.sample_rate, "gain": cfg.output.gain,
             "blocksize": cfg.live.synth_block}
    try:
        scheduler = RealtimeScheduler(args.midi_out, clock.wall_of, channel_map(cfg),
                                      clock_out=cfg.live.clock_out and not args.no_clock and not args.clock_in,
                                      latency_ms=cfg.live.latency_ms, record=record is not None, synth_options=synth,
                                      realtime_priority=cfg.live.realtime_priority, link=args.link)
    except SenderError as e:
        raise UserError(str(e)) from None
    follower = None
    try:  # the ports are checked first (fast); the models load after
        if args.clock_in:
            follower = MidiClockIn(args.clock_in)
        stages = build_stages(cfg)
    except PortError as e:
        scheduler.close()
        raise UserError(str(e)) from None
    except BaseException:
        scheduler.close()
        raise
    tempo_for = None
    if follower is not None:
        lo, hi = cfg.conductor.tempo_min, cfg.conductor.tempo_max
        tempo_for = lambda arousal: follower.bpm or tempo_for_arousal(arousal, lo, hi)  # noqa: E731
    keeper = MidiFileSink()
    engine = Engine(cfg, source, TeeSink(scheduler, keeper), clock, stages, tempo_for=tempo_for,
                    hints=hint_sources(cfg.hints, clock.playhead))
    stopped_by: list[int] = []

    def on_signal(signum, frame):
        if stopped_by:  # a second Ctrl-C: stop waiting for anything
            raise KeyboardInterrupt
        stopped_by.append(signum)
        scheduler.abort()  # silence now, from the sender process; the engine then winds down
        engine.stop()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    display = None
    if not args.quiet:
        from cuecast.engine.display import LiveDisplay  # noqa: PLC0415

        display = LiveDisplay(lambda: engine.state, scheduler.status, cfg.conductor.lookahead_s).start()
    timer = None
    if args.duration:
        timer = asyncio_timer(args.duration, engine.stop)
    started = time.monotonic()
    try:
        timeline = asyncio.run(engine.run())
    except NoFramesError:
        raise InputError(f"{args.source} gave no video frames") from None
    except SourceError as e:
        raise InputError(str(e)) from None
    finally:
        if timer is not None:
            timer.cancel()
        scheduler.close()  # a no-op when the engine closed it; the last guard otherwise
        if follower is not None:
            follower.close()
        if display is not None:
            display.stop()
        for s, h in old.items():
            signal.signal(s, h)
    wall = time.monotonic() - started
    report = scheduler.report
    if record is not None:
        from cuecast.models.music.metrics import chord_onsets  # noqa: PLC0415

        timeline.chords = chord_onsets(list(keeper.notes))
        wall0 = clock.wall_of(0.0) if clock.started else started
        write_record(record / "sent.mid", report.log if report else [], wall0)
        meta = {"source": args.source, "outputs": list(args.midi_out), "generator": cfg.generator.backend,
                "seed": cfg.generator.seed, "lookahead_s": cfg.conductor.lookahead_s, "live": True}
        if report and report.lateness:
            meta.update({f"send_late_{k}_ms": round(v, 3) for k, v in report.percentiles_ms().items() if k != "n"})
        write_json(record / "timeline.json", timeline_json(timeline, **meta))
    lat = report.percentiles_ms() if report else {}
    late_in = len(report.handover_late) if report else 0
    print(f"played {wall:.1f} s: {len(timeline.boundaries)} boundaries, {engine.state.replans} re-plans, "
          f"{lat.get('n', 0)} messages sent, p50 {lat.get('p50', 0):.2f} ms p99 {lat.get('p99', 0):.2f} ms after "
          f"their deadline (sender {report.priority if report else '?'}); {late_in} notes reached the sender late; "
          f"{engine.state.dropped} frames dropped" + (f"; recorded in {record}" if record else ""), file=sys.stderr)
    if stopped_by:
        return 128 + stopped_by[0]
    return 0


def asyncio_timer(seconds: float, fn):
    """A plain timer thread (the engine's loop is not ours to schedule on)."""
    import threading  # noqa: PLC0415

    t = threading.Timer(seconds, fn)
    t.daemon = True
    t.start()
    return t
