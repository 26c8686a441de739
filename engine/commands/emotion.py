"""`cuecast emotion`: the windowed emotion estimate of a video, window by window."""

from __future__ import annotations

import json
import sys

from cuecast.engine.commands.common import add_common_options, config_from_args, media_progress
from cuecast.engine.errors import ConfigError, InputError

HELP = "print the emotion of a video window by window (Ekman-6, valence, arousal)"
DESCRIPTION = """\
Estimate the emotion of a video in sliding windows, as the engine does live: the picture's colour,
brightness and motion, the cut rate (the engine's cut detector), faces and their expressions, and the sound.

Each line: window start-end in seconds, the largest share (one of the six emotions, or "neutral" when
the window says nothing in particular) and that share, the neutral share, valence (-1 unpleasant ..
1 pleasant), arousal (-1 calm .. 1 excited), and which signals contributed. Ordinary footage reads near
neutral (the picture signals are calibrated on everyday clips; see models/weights/EMOTION_MODEL_CARD.md).

examples:
  cuecast emotion movie.mp4
  cuecast emotion movie.mp4 --json > emotion.json
  cuecast emotion movie.mp4 --no-faces --config stream"""


def add_arguments(p) -> None:
    p.add_argument("input", metavar="INPUT", help="a video file")
    p.add_argument("--json", action="store_true", help="print JSON: {input, windows: [...]} instead of a table")
    add_common_options(p)
    p.add_argument("--no-faces", action="store_true", help="skip face detection and expression")
    p.add_argument("--no-audio", action="store_true", help="ignore the input's sound")


def _estimator(cfg):
    from cuecast.models.emotion.estimator import EmotionEstimator
    try:
        return EmotionEstimator(cfg.emotion)
    except (FileNotFoundError, ValueError) as e:  # missing/broken weights say how to make them
        raise ConfigError(str(e)) from None


def run(args) -> int:
    from cuecast.models.cuts.detector import OnlineCutDetector
    from cuecast.models.emotion.estimator import analyse
    from cuecast.streams.video import FileDecoder
    from cuecast.types import SourceError

    overrides = {}
    if args.no_faces:
        overrides["emotion.faces"] = False
    if args.no_audio:
        overrides["emotion.audio"] = False
    cfg = config_from_args(args, **overrides)
    est = _estimator(cfg)
    # the engine's cut detector reports the boundaries, as in a render and in the calibration
    # (tools/calibrate_emotion.py): the estimator's histogram stand-in misses a cut between shots of
    # the same colours, so without it this command read the same clip calmer than the render did
    detector = OnlineCutDetector(cfg.cuts)
    try:
        source = FileDecoder(args.input, analysis_width=cfg.source.analysis_width,
                            audio=cfg.source.audio and cfg.emotion.audio)
        bar = media_progress(source.info.duration, "emotion", args.quiet)
        windows = analyse(est, source, detector, on_frame=lambda f: bar.update(max(0.0, round(f.t, 1) - bar.n)))
        bar.close()
    except SourceError as e:
        raise InputError(str(e)) from None
    if not windows:
        raise InputError(f"{args.input}: no video frames decoded")
    if args.json:
        json.dump({"input": args.input, "window_s": cfg.emotion.window_s, "hop_s": cfg.emotion.hop_s,
                   "windows": [w.to_json() for w in windows]}, sys.stdout, indent=1)
        print()
        return 0
    from cuecast.models.emotion.va import top_share
    print(f"{'window':>13}  {'emotion':<9} {'p':>4}  {'neutral':>7}  {'valence':>7} {'arousal':>7}  signals")
    for w in windows:
        name, share = top_share(w.probs, w.neutral)
        print(f"{w.start:6.2f}-{w.end:6.2f}  {name:<9} {share:4.2f}  {w.neutral:7.2f}  {w.valence:+7.2f} "
              f"{w.arousal:+7.2f}  {','.join(w.signals)}")
    return 0
