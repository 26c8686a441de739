"""`cuecast config`: show the effective configuration or check a file."""

from __future__ import annotations

import dataclasses
import json

from cuecast.engine.config import PRESETS, load_config

HELP = "print the effective configuration (defaults + preset/file), or check a config file"


def add_arguments(p) -> None:
    p.add_argument("--config", metavar="FILE|PRESET", help=f"a TOML file or a preset ({', '.join(PRESETS)})")


def run(args) -> int:
    cfg = load_config(args.config)
    print(json.dumps(dataclasses.asdict(cfg), indent=2))
    return 0
