"""`cuecast live`: watch a video source in real time and play its soundtrack to MIDI ports or a synth."""

from __future__ import annotations

import argparse
import sys
from urllib.parse import quote

from cuecast.engine.commands.common import add_control_options, add_engine_options, config_from_args, duration_value
from cuecast.engine.errors import UserError
from cuecast.engine.live import play
from cuecast.engine.remote import Remote

HELP = "play a soundtrack live for a video source, to MIDI ports, JACK, a software synth or a delayed video out"
DESCRIPTION = """\
Watch a video source at real-time pace and play music that follows its emotion and its cuts, keeping time
like a sequencer: notes go out at wall-clock deadlines from a separate real-time sender, with MIDI clock
(24 ppqn, start, stop, song position) following the tempo. On the end, Ctrl-C, SIGTERM, an error or a
lost port, every sounding note is ended (note-offs, then all-notes-off, all-sound-off, sustain-off).

sources:
  file:PATH          a video file played at real-time pace (--loop to repeat); a bare path works too
  device:/dev/video0 a capture device (v4l2 on Linux, avfoundation on macOS, dshow on Windows);
                     options: device:/dev/video0?size=1280x720&fps=30&format=mjpeg
  lavfi:testsrc      an FFmpeg test pattern (no hardware needed)
  webrtc[:HOST:PORT] serve a page (default http://127.0.0.1:8080/) that sends a browser's camera, screen or
                     a video file and plays the soundtrack back; ?autostart=1 starts the camera at once
  rtmp://127.0.0.1:1935/live/KEY?listen=1    wait for a push from OBS or ffmpeg (SRT: srt://…?mode=listener)
  udp://127.0.0.1:5000                       MPEG-TS datagrams sent to this port (udp://@:5000: any interface)
  http(s)://…, …/live.m3u8, rtsp://…         a stream pulled from a server or camera (HLS, RTSP, a file)
  pipe:PATH, -       a stream (MPEG-TS, Matroska) written into a FIFO or unix socket, or to standard input;
                     a FIFO given as a plain path is refused: pipe: says it is a stream. Its end ends the run
  A live stream that drops is waited for again while the music is held, then fades.

outputs (--midi-out, several allowed):
  rtmidi:NAME        an existing MIDI port, by name or part of it (`cuecast ports` lists them)
  virtual:NAME       a new virtual port others can connect to (Windows: use loopMIDI and rtmidi:NAME)
  jack:NAME          a JACK MIDI port (connected to the JACK input port NAME if given)
  synth              a General MIDI software synth (FluidSynth) to the sound device; synth:FILE.sf2
  none               play nothing (display only)

audio out (--audio-out, for the synth; `cuecast ports` lists the devices):
  3 or "USB Audio"   a sound device by index or (part of) its name
  jack               a JACK client `cuecast` with ports out_L and out_R, connected to nothing (OBS takes it)
  jack:NAME?connect=system:playback_1,system:playback_2
                     a JACK client NAME connected to those ports (or to a client's first two inputs)

video out (--video-out): the input picture delayed by exactly the lookahead, with the soundtrack in sync
under it (FluidSynth, from the same notes; --mix-input-audio keeps the input's own sound under it), as
H.264 + AAC with what platform ingests accept (yuv420p, keyframe every 2 s, constant bitrate):
  out.mp4, out.mkv   a file, finished on every way out (end, --duration, Ctrl-C, SIGTERM) so it plays
  rtmp://HOST/app/KEY   a platform ingest or media server (FLV)
  srt://HOST:PORT, udp://HOST:PORT   MPEG-TS, e.g. into OBS's Media Source
If the encoder cannot keep up it says so at once and drops pictures; the delay never grows.

The sender runs in its own process at real-time priority where the OS allows it; `--clock-in` follows
an external MIDI clock (its tempo, start, stop and song position: the music stays on its grid, cut chords
land off the grid) instead of sending one; `--link` leads an Ableton Link session (other Link apps follow
the music's tempo, including the bends that land beats on cuts), `--link follow` plays to the session's
tempo and beat instead and never changes it. With --mqtt, --osc-out, --osc-in and --overlay the state goes
out and commands come in (README: remote control and telemetry). Exit status: 0 at the end of the source or of
--duration, 130 after Ctrl-C, 143 after SIGTERM, 2 for a user error (a missing port, file or device), 1 when
an output was lost during the run (even if it came back), the JACK server went away or the sender died.

examples:
  cuecast live file:movie.mp4 --midi-out virtual:cuecast
  cuecast live device:/dev/video0 --midi-out rtmidi:Minilogue --lookahead 0
  cuecast live file:clip.mp4 --midi-out synth --record out/ --duration 60
  cuecast live webrtc --midi-out synth
  cuecast live "rtmp://127.0.0.1:1935/live/cuecast?listen=1" --midi-out jack:synth
  cuecast live webrtc --midi-out synth --mqtt mqtt://127.0.0.1 --osc-out 127.0.0.1:7000 --overlay 127.0.0.1:8090
  cuecast live device:/dev/video0 --video-out rtmp://live.example.com/app/KEY --config stream
  cuecast live file:talk.mp4 --video-out out.mp4 --mix-input-audio 0.4 --audio-out jack"""


def add_arguments(p) -> None:
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="file:PATH (or a path), device:PATH, lavfi:GRAPH, webrtc[:HOST:PORT], pipe:PATH, - (stdin) "
                        "or a stream URL (see above)")
    p.add_argument("--source", dest="source_opt", metavar="SOURCE", help=argparse.SUPPRESS)  # the old spelling
    p.add_argument("--token", metavar="TOKEN",
                   help="webrtc: the token a browser must give (?token=TOKEN); bound to an address other than "
                        "loopback, cuecast makes one and prints it when none is given. Also what --osc-in, --overlay "
                        "and --hints-osc listeners bound beyond loopback require (control.token)")
    p.add_argument("--midi-out", action="append", default=[], metavar="SPEC", dest="midi_out",
                   help="rtmidi:NAME, virtual:NAME, jack:NAME, synth or none (repeat for several; "
                        "optional with --audio-out or --video-out)")
    p.add_argument("--audio-out", metavar="DEVICE", dest="audio_out",
                   help="play the software synth to this sound device (index or name from `cuecast ports`) or to "
                        "a JACK client: jack[:NAME][?connect=PORT_L,PORT_R]")
    p.add_argument("--video-out", metavar="TARGET", dest="video_out",
                   help="the picture delayed by the lookahead with the soundtrack: FILE.mp4/.mkv/.ts, "
                        "rtmp://..., srt://... or udp://HOST:PORT")
    p.add_argument("--mix-input-audio", type=float, metavar="LEVEL", dest="mix_input_audio",
                   help="with --video-out: the input's own sound under the music at LEVEL 0..1 "
                        "(default 0: the soundtrack replaces it)")
    add_engine_options(p)
    p.add_argument("--record", metavar="DIR", help="write what was sent (sent.mid, real send times) and timeline.json here")
    p.add_argument("--duration", type=str, metavar="SECONDS", help="stop after this many seconds (at most a week)")
    p.add_argument("--loop", action="store_true", help="play a file source again and again")
    p.add_argument("--no-clock", action="store_true", help="do not send MIDI clock")
    p.add_argument("--clock-in", metavar="SPEC",
                   help="follow the tempo of an external MIDI clock on rtmidi:NAME, jack:NAME or virtual:NAME "
                        "(the music's tempo follows it; MIDI clock out is then off)")
    p.add_argument("--link", nargs="?", const="lead", choices=("lead", "follow"),
                   help="join an Ableton Link session: lead it with the music's tempo and beat (the default), or "
                        "follow its tempo and beat (needs the link extra: pip install 'cuecast[link]')")
    add_control_options(p)


def run(args) -> int:
    source = source_arg(args)
    cfg = config_from_args(args)
    duration = None if args.duration is None else duration_value(args.duration)
    if args.token:
        if source == "webrtc" or source.startswith("webrtc:"):
            source += ("&" if "?" in source else "?") + "token=" + quote(args.token, safe="")
        elif not (cfg.control.osc_in or cfg.control.overlay or cfg.hints.osc):
            raise UserError("--token is for a webrtc[:HOST:PORT] source or the --osc-in, --overlay and --hints-osc "
                            "listeners")
    first_out = args.midi_out[0] if args.midi_out else ""
    remote = Remote(cfg.control, latency_s=float(cfg.live.latency_ms.get(first_out, 0.0)) / 1000)
    result = play(cfg, source, args.midi_out, record=args.record, duration=duration, loop=args.loop,
                  clock_in=args.clock_in, link=args.link, midi_clock=not args.no_clock, display=not args.quiet,
                  control=remote.serve if remote.active else None, video_out=args.video_out,
                  mix_input_audio=args.mix_input_audio, audio_out=args.audio_out)
    for w in result.warnings:
        print(f"cuecast: warning: {w}", file=sys.stderr)
    print(result.summary(), file=sys.stderr)
    if result.stopped_by:
        return 128 + result.stopped_by
    if result.fault:
        print(f"cuecast: error: {result.fault}", file=sys.stderr)
        return 1
    return 0


def source_arg(args) -> str:
    """SOURCE, positional like every command's input; --source SOURCE still works."""
    if args.source and args.source_opt and args.source != args.source_opt:
        raise UserError(f"two sources given ({args.source} and --source {args.source_opt}): give one")
    source = args.source or args.source_opt
    if not source:
        raise UserError("give a SOURCE: a video file, device:/dev/video0 or lavfi:testsrc (see cuecast live --help)")
    return source
