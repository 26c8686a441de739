"""The `cuecast` command: one subcommand per module in engine/commands/."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from cuecast import __version__
from cuecast.engine.errors import UserError

# Each module defines HELP, add_arguments(parser) and run(args) -> int.
COMMANDS = ("demo", "render", "compose", "cuts", "emotion", "live", "ports", "config")

EPILOG = """\
examples:
  cuecast demo                                   render the built-in demo clip
  cuecast render movie.mp4 -o out/               soundtrack.mid/.wav/.mp4, timeline.json, report.png
  cuecast compose --valence 0.6 --arousal 0.3 --seconds 20 --cuts 4,8.5 -o calm.mid
  cuecast live movie.mp4 --midi-out virtual:cuecast
                                                 play it live to a virtual MIDI port
  cuecast cuts movie.mp4 --json                  the scene boundaries the online detector finds

`cuecast COMMAND --help` explains each command."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cuecast",
        description="Real-time soundtrack engine: follows the emotion and the cuts of a video and plays music that fits.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cuecast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"cuecast.engine.commands.{name}")
        except ImportError as e:  # a broken install: the other commands still work, this one says why not
            p = sub.add_parser(name, help=f"(unavailable: {e})", add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(_run=_unavailable(name, e))
            continue
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _unavailable(name: str, error: ImportError):
    def run(args) -> int:
        raise UserError(f"`cuecast {name}` cannot run: {error} (reinstall with tools/install.sh)")
    return run


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        print(f"cuecast: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("cuecast: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
