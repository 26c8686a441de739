"""Options every command shares (--config, --set, -q) and those of the commands that run the engine."""

from __future__ import annotations

import argparse
import math
import tomllib

from cuecast.engine.config import PRESETS, Config, load_config
from cuecast.engine.errors import UserError
from cuecast.engine.stages import set_torch_threads
from cuecast.models.music.config import BACKENDS, SEED_MAX

MAX_RUN_S = 7 * 86400.0  # --duration: a week, and a timer that any platform can hold


QUIET_HELP = "no progress bar or live display (results, warnings and errors still print)"


def add_common_options(p: argparse.ArgumentParser) -> None:
    """--config, --set and -q: the same on every command."""
    p.add_argument("--config", metavar="FILE|PRESET",
                   help=f"TOML config file or preset ({', '.join(PRESETS)}); --set and the flags override it")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="set",
                   help="override one config value, e.g. --set conductor.lookahead_s=1.5 "
                        "(a TOML value; repeat for several; `cuecast config` lists the keys)")
    p.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)


def add_engine_options(p: argparse.ArgumentParser, lookahead: bool = True) -> None:
    add_common_options(p)
    if lookahead:
        p.add_argument("--lookahead", type=float, metavar="SECONDS",
                       help="how far the playhead runs behind the newest frame, so cuts are known ahead "
                            "(default 3; 0 = no delay, cuts are forecast or re-planned)")
    p.add_argument("--seed", metavar="N",
                   help=f"random seed, 0..{SEED_MAX}; the same seed gives the same MIDI (default 0)")
    p.add_argument("--generator", choices=BACKENDS, help="music generator backend (default from config: transformer; vj preset: arranger)")


def set_overrides(items: list[str]) -> dict:
    """--set SECTION.KEY=VALUE items as load_config overrides; VALUE is read as TOML (1.5, true, "x",
    [1, 2]), and a bare word that is not TOML as a string."""
    out = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or "." not in key or not all(key.split(".")):
            raise UserError(f"--set {item!r}: write SECTION.KEY=VALUE, e.g. --set conductor.lookahead_s=1.5")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        out[key] = value
    return out


# remote control and hint flags of `cuecast live`, each the twin of a config key (the flag wins)
CONTROL_FLAGS = {"name": "control.name", "mqtt": "control.mqtt", "osc_out": "control.osc_out",
                 "osc_in": "control.osc_in", "overlay": "control.overlay", "token": "control.token",
                 "hints_mqtt": "hints.mqtt", "hints_osc": "hints.osc", "hints_obs": "hints.obs"}


def add_control_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("remote control and telemetry (also in the config: [control], [hints])")
    g.add_argument("--name", metavar="NAME", help="this instance's name in MQTT topics (default: the host name)")
    g.add_argument("--mqtt", metavar="URL",
                   help="publish state to and take commands from an MQTT broker: mqtt[s]://[user:pass@]HOST[:PORT][/PREFIX] "
                        "(default prefix cuecast/NAME; topics PREFIX/state, /boundary, /status, /set/..., /error)")
    g.add_argument("--osc-out", metavar="HOST:PORT", dest="osc_out",
                   help="send /cuecast/beat, /bar, /tempo, /cut (as its chord sounds), /valence, /arousal, /phase")
    g.add_argument("--osc-in", metavar="HOST:PORT", dest="osc_in",
                   help="take /cuecast/set/mood, /intensity, /tempo, /mute, /panic, /generator, /cut over OSC")
    g.add_argument("--overlay", metavar="HOST:PORT",
                   help="serve the overlay page (/overlay, for an OBS browser source) and its WebSocket (/ws)")
    g.add_argument("--hints-mqtt", metavar="HOST:PORT", dest="hints_mqtt", help="cut hints on topic cuecast/cut of this broker")
    g.add_argument("--hints-osc", metavar="HOST:PORT", dest="hints_osc", help="listen for /cuecast/cut hints here")
    g.add_argument("--hints-obs", metavar="URL", dest="hints_obs", help="OBS scene transitions as hints (ws://127.0.0.1:4455)")


def config_from_args(args, **extra) -> Config:
    """The config of a command: --config, then --set, then the command's own flags (and `extra`)."""
    overrides = set_overrides(getattr(args, "set", None))
    overrides.update({key: getattr(args, flag) for flag, key in CONTROL_FLAGS.items() if getattr(args, flag, None)})
    overrides.update(extra)
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


def media_progress(total_s: float, desc: str, quiet: bool):
    """A progress bar over media seconds on stderr (only on a terminal, never with -q); update(t) moves it."""
    import sys

    from tqdm import tqdm

    return tqdm(total=round(total_s, 1) or None, unit="s", desc=desc, file=sys.stderr, mininterval=0.5,
                disable=quiet or not sys.stderr.isatty(), bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]")
