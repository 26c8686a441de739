"""`cuecast live`: watch a video source in real time and play its soundtrack to MIDI ports or a synth."""

from __future__ import annotations

import argparse
import sys

from cuecast.engine.commands.common import add_engine_options, config_from_args, duration_value
from cuecast.engine.errors import UserError
from cuecast.engine.live import play

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
  cuecast live file:movie.mp4 --midi-out virtual:cuecast
  cuecast live device:/dev/video0 --midi-out rtmidi:Minilogue --lookahead 0
  cuecast live file:clip.mp4 --midi-out synth --record out/ --duration 60"""


def add_arguments(p) -> None:
    p.add_argument("source", nargs="?", metavar="SOURCE", help="file:PATH (or a path), device:PATH or lavfi:GRAPH")
    p.add_argument("--source", dest="source_opt", metavar="SOURCE", help=argparse.SUPPRESS)  # the old spelling
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


def run(args) -> int:
    source = source_arg(args)
    cfg = config_from_args(args)
    duration = None if args.duration is None else duration_value(args.duration)
    result = play(cfg, source, args.midi_out, record=args.record, duration=duration, loop=args.loop,
                  clock_in=args.clock_in, link=args.link, midi_clock=not args.no_clock, display=not args.quiet)
    print(result.summary(), file=sys.stderr)
    return 128 + result.stopped_by if result.stopped_by else 0


def source_arg(args) -> str:
    """SOURCE, positional like every command's input; --source SOURCE still works."""
    if args.source and args.source_opt and args.source != args.source_opt:
        raise UserError(f"two sources given ({args.source} and --source {args.source_opt}): give one")
    source = args.source or args.source_opt
    if not source:
        raise UserError("give a SOURCE: a video file, device:/dev/video0 or lavfi:testsrc (see cuecast live --help)")
    return source
