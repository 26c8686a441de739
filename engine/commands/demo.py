"""`cuecast demo`: the built-in default — make a short clip with cuts and changing moods, and render it."""

from __future__ import annotations

import os
from pathlib import Path

from cuecast.engine.commands.common import add_engine_options, config_from_args
from cuecast.engine.errors import UserError
from cuecast.engine.render import render
from cuecast.testmedia.video import make_test_video

HELP = "render the built-in demo clip (no files, hardware or services needed)"
DESCRIPTION = """\
Make a 24-second demo clip with six shots and changing moods (warm and bright, dark and still,
saturated and fast, ...), render its soundtrack, and say where everything is.

example:
  cuecast demo                 outputs in ./cuecast-demo/
  cuecast demo -o /tmp/demo --generator arranger   the light rule-based generator"""

# (seconds, RGB, motion in px/frame): moods a listener can tell apart
SHOTS = [
    (4.0, (235, 190, 120), 1.0),  # warm, bright, gentle motion: joyful
    (4.5, (40, 50, 90), 0.0),  # dark blue and still: sad
    (3.5, (220, 40, 40), 9.0),  # saturated red, fast: tense, excited
    (4.0, (120, 200, 230), 2.0),  # light sky blue: calm, open
    (3.0, (30, 30, 30), 6.0),  # near black, moving: fear
    (5.0, (250, 220, 80), 3.0),  # sunny yellow: joy again
]


def add_arguments(p) -> None:
    p.add_argument("-o", "--outdir", default="cuecast-demo", metavar="OUTDIR", help="output folder (default ./cuecast-demo)")
    add_engine_options(p)


def demo_clip() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cuecast"
    clip = cache / "demo-v2.mp4"
    if not clip.exists():
        try:
            cache.mkdir(parents=True, exist_ok=True)
            tmp = cache / f".demo-{os.getpid()}.mp4"
            make_test_video(tmp, SHOTS, fps=25, size=(640, 360), audio_hz=None)
            tmp.replace(clip)
        except OSError as e:
            raise UserError(f"cannot write the demo clip to {cache}: {e.strerror or e}") from None
    return clip


def run(args) -> int:
    cfg = config_from_args(args)
    clip = demo_clip()
    print(f"demo clip: {clip} (24 s, 6 shots)")
    result = render(clip, args.outdir, cfg, progress=not args.quiet)
    tl = result.timeline
    print(f"found {len(tl.boundaries)} cuts, placed {len(tl.chords)} chord onsets; "
          f"rendered in {result.wall_s:.1f} s ({tl.duration / max(result.wall_s, 1e-9):.1f}x real time)")
    for w in result.warnings:
        print(f"note: {w}")
    print("outputs:")
    for f in result.files:
        print(f"  {f}")
    print("play it:  ffplay " + str(Path(args.outdir) / "soundtrack.mp4") + "   (or any video player)")
    return 0
