"""`cuecast cuts`: the scene boundaries the online detector finds, and with --predict the forecasts."""

from __future__ import annotations

import json
import sys

from cuecast.engine.commands.common import add_common_options, config_from_args, media_progress
from cuecast.engine.errors import ConfigError, InputError
from cuecast.types import Frame

HELP = "print the scene boundaries (cuts, fades, dissolves) the online detector finds in a video"
DESCRIPTION = """\
Run the online cut detector over a video frame by frame, as the engine does live, and print every
boundary: its time in seconds, its kind (hard, fade, dissolve; fades and dissolves with their span) and
the frame at which the detector decided (a hard cut is decided on the frame after it at the latest).

With --predict the cut forecaster runs too and, every half second of the video, says where it expects
the next cut and how sure it is (P within 2 s); with --json every forecast (each 0.1 s) with its hazard.

examples:
  cuecast cuts movie.mp4
  cuecast cuts movie.mp4 --json > cuts.json
  cuecast cuts music_video.mp4 --predict"""


def add_arguments(p) -> None:
    p.add_argument("input", metavar="INPUT", help="a video file")
    p.add_argument("--json", action="store_true", help="print JSON: {input, boundaries, forecasts} instead of lines")
    p.add_argument("--predict", action="store_true", help="also run the cut forecaster and print its forecasts")
    add_common_options(p)


def _forecaster(cfg):
    from cuecast.models.cuts.forecast import load_forecaster

    try:
        return load_forecaster(cfg.cuts)
    except (FileNotFoundError, ValueError) as e:  # missing or broken weights: the message says how to fix
        raise ConfigError(str(e)) from None


def _detector(cfg):
    from cuecast.models.cuts.detector import OnlineCutDetector

    try:
        return OnlineCutDetector(cfg.cuts)
    except ValueError as e:  # e.g. cuts.device = "cuda" without CUDA
        raise ConfigError(str(e)) from None


def analyse(path: str, cfg, predict: bool, quiet: bool = True):
    """(boundaries with the index of the deciding frame, forecasts, frame count, duration)."""
    from cuecast.streams.video import FileDecoder
    from cuecast.types import SourceError

    det = _detector(cfg)
    fc = _forecaster(cfg) if predict else None
    found, forecasts, n, last_t = [], [], 0, 0.0
    try:
        source = FileDecoder(path, analysis_width=cfg.source.analysis_width, audio=predict and cfg.source.audio)
        bar = media_progress(source.info.duration, "cuts", quiet)
        for item in source:
            if not isinstance(item, Frame):
                fc.process_audio(item)
                continue
            new = det.process_frame(item)
            found += [(b, item.index) for b in new]
            if fc is not None:
                f = fc.process_frame(item, new)
                if f is not None:
                    forecasts.append(f)
            n, last_t = n + 1, item.t
            bar.update(max(0.0, round(item.t, 1) - bar.n))
        bar.close()
    except SourceError as e:
        raise InputError(str(e)) from None
    found += [(b, n - 1) for b in det.flush()]
    if n == 0:
        raise InputError(f"{path}: no video frames could be decoded")
    return found, forecasts, n, last_t


def _forecast_json(f) -> dict:
    t_next, p = f.most_likely()
    return {"t": round(f.t, 3), "bin_s": f.bin_s, "most_likely": round(t_next, 3), "p_bin": round(p, 4),
            "p_within_2s": round(f.probability_by(2.0), 4), "hazard": [round(float(h), 4) for h in f.hazard]}


def run(args) -> int:
    cfg = config_from_args(args)
    found, forecasts, n, duration = analyse(args.input, cfg, args.predict, args.quiet)
    if args.json:
        out = {"input": args.input, "frames": n, "duration": round(duration, 4),
               "boundaries": [b.to_json() | {"decided_frame": idx} for b, idx in found]}
        if args.predict:
            out["forecasts"] = [_forecast_json(f) for f in forecasts]
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    print(f"{args.input}: {n} frames, {duration:.2f} s, {len(found)} boundaries")
    for b, idx in found:
        span = f" ({b.start:.3f}-{b.end:.3f})" if b.start is not None and b.end is not None else ""
        print(f"{b.t:9.3f}  {b.kind:<8}{span}  decided at {b.decided_at:.3f} (frame {idx})")
    if args.predict:
        print("forecasts (every 0.5 s): time, most likely next cut, P(cut within 2 s)")
        next_print = 0.0
        for f in forecasts:
            if f.t + 1e-9 < next_print:
                continue
            next_print = f.t + 0.5
            t_next, _ = f.most_likely()
            print(f"{f.t:9.2f}  next ~{t_next:7.2f}  P2s={f.probability_by(2.0):.2f}")
    return 0
