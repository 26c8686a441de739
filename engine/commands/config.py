"""`cuecast config`: the effective configuration as TOML, to read, save and load back."""

from __future__ import annotations

from cuecast.engine.commands.common import add_common_options, config_from_args
from cuecast.engine.config import to_toml

HELP = "print the effective configuration as TOML (defaults + preset/file + --set); save it to start your own"
DESCRIPTION = """\
Print every setting in effect, as TOML: the built-in defaults, then the preset or file given with
--config, then each --set. The output is a valid config file: save it, edit it, pass it back with --config.
A config that does not load (an unknown key, a value out of range) is reported in one line.

examples:
  cuecast config                                   the defaults
  cuecast config --config vj > my-rig.toml         start from the VJ preset
  cuecast config --config my-rig.toml              check a file
  cuecast live lavfi:testsrc --midi-out none --config my-rig.toml"""


def add_arguments(p) -> None:
    add_common_options(p)


def run(args) -> int:
    print(to_toml(config_from_args(args)), end="")
    return 0
