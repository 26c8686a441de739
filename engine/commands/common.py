"""Options shared by the commands that run the engine."""

from __future__ import annotations

import argparse

from cuecast.engine.config import PRESETS, Config, load_config
from cuecast.models.music.config import BACKENDS


def add_engine_options(p: argparse.ArgumentParser, lookahead: bool = True) -> None:
    p.add_argument("--config", metavar="FILE|PRESET",
                   help=f"TOML config file or preset ({', '.join(PRESETS)}); flags below override it")
    if lookahead:
        p.add_argument("--lookahead", type=float, metavar="SECONDS",
                       help="how far the playhead runs behind the newest frame, so cuts are known ahead "
                            "(default 3; 0 = no delay, cuts are forecast or re-planned)")
    p.add_argument("--seed", type=int, metavar="N", help="random seed; the same seed gives the same MIDI (default 0)")
    p.add_argument("--generator", choices=BACKENDS, help="music generator backend (default from config: transformer; vj preset: arranger)")


def config_from_args(args) -> Config:
    overrides = {}
    if getattr(args, "lookahead", None) is not None:
        overrides["conductor.lookahead_s"] = args.lookahead
    if getattr(args, "seed", None) is not None:
        overrides["generator.seed"] = args.seed
    if getattr(args, "generator", None):
        overrides["generator.backend"] = args.generator
    return load_config(getattr(args, "config", None), overrides)
