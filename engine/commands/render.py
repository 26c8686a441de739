"""`cuecast render`: a video file in, its soundtrack out."""

from __future__ import annotations

import sys

from cuecast.engine.commands.common import add_engine_options, config_from_args
from cuecast.engine.render import render

HELP = "render a soundtrack for a video file (MIDI, WAV, MP4 with the music, timeline.json, report.png)"
DESCRIPTION = """\
Render a soundtrack for a video file, through the same engine that plays live.

Writes into OUTDIR:
  soundtrack.mid   one track per instrument (drums on channel 10), tempo map included
  soundtrack.wav   the MIDI played by a SoundFont synth (FluidSynth)
  soundtrack.mp4   the input video with the soundtrack as its audio
  timeline.json    cuts (time, kind), emotion windows (Ekman-6, valence/arousal), tempo, chord onsets
  report.png       emotion over time, cuts, piano roll

example:
  cuecast render holiday.mp4 -o out/ --seed 7
  cuecast render https://example.org/clip.m3u8 -o out/     (a stream: read to its end)
  cuecast render trailer.mkv -o out/ --lookahead 5 --config broadcast"""


def add_arguments(p) -> None:
    p.add_argument("input", metavar="INPUT",
                   help="video file (anything FFmpeg reads), or a stream URL (http(s), .m3u8, rtsp, rtmp, srt, udp) "
                        "recorded to its end")
    p.add_argument("-o", "--outdir", required=True, metavar="OUTDIR", help="output folder (created if missing)")
    add_engine_options(p)


def run(args) -> int:
    cfg = config_from_args(args)
    result = render(args.input, args.outdir, cfg, progress=not args.quiet)
    for w in result.warnings:
        print(f"cuecast: warning: {w}", file=sys.stderr)
    tl = result.timeline
    rate = tl.duration / result.wall_s if result.wall_s > 0 else 0.0
    print(f"{tl.duration:.1f} s of video, {len(tl.boundaries)} boundaries, {len(tl.chords)} chord onsets, "
          f"{len(result.notes)} notes; rendered in {result.wall_s:.1f} s ({rate:.1f}x real time)")
    for f in result.files:
        print(f"  {f}")
    return 0
