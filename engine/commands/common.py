"""Options shared by the commands that run the engine."""

from __future__ import annotations

import argparse

import math

from cuecast.engine.config import PRESETS, Config, load_config
from cuecast.engine.errors import UserError
from cuecast.engine.stages import set_torch_threads
from cuecast.models.music.config import BACKENDS, SEED_MAX

MAX_RUN_S = 7 * 86400.0  # --duration: a week, and a timer that any platform can hold


def add_engine_options(p: argparse.ArgumentParser, lookahead: bool = True) -> None:
    p.add_argument("--config", metavar="FILE|PRESET",
                   help=f"TOML config file or preset ({', '.join(PRESETS)}); flags below override it")
    if lookahead:
        p.add_argument("--lookahead", type=float, metavar="SECONDS",
                       help="how far the playhead runs behind the newest frame, so cuts are known ahead "
                            "(default 3; 0 = no delay, cuts are forecast or re-planned)")
    p.add_argument("--seed", metavar="N",
                   help=f"random seed, 0..{SEED_MAX}; the same seed gives the same MIDI (default 0)")
    p.add_argument("--generator", choices=BACKENDS, help="music generator backend (default from config: transformer; vj preset: arranger)")


def config_from_args(args) -> Config:
    overrides = {}
    if getattr(args, "lookahead", None) is not None:
        overrides["conductor.lookahead_s"] = args.lookahead
    if getattr(args, "seed", None) is not None:
        overrides["generator.seed"] = seed_value(args.seed)
    if getattr(args, "generator", None):
        overrides["generator.backend"] = args.generator
    cfg = load_config(getattr(args, "config", None), overrides)
    set_torch_threads(cfg.runtime)  # the program's start: the one place a process-wide setting is made
    return cfg


def seed_value(text) -> int:
    """--seed: a whole number in 0..SEED_MAX (what every random generator here takes), else a user error."""
    try:
        v = int(str(text), 10)
    except ValueError:
        raise UserError(f"--seed must be a whole number in 0..{SEED_MAX} (got {text!r})") from None
    if not 0 <= v <= SEED_MAX:
        raise UserError(f"--seed must be in 0..{SEED_MAX} (got {v})")
    return v


def duration_value(text, flag: str = "--duration") -> float:
    """A run length in seconds: finite, more than 0, at most a week."""
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise UserError(f"{flag} must be a number of seconds (got {text!r})") from None
    if not math.isfinite(v) or not 0 < v <= MAX_RUN_S:
        raise UserError(f"{flag} must be more than 0 and at most {MAX_RUN_S:.0f} seconds (got {text})")
    return v
