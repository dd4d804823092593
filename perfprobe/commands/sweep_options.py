"""The flags of a sweep (``perfprobe sweep`` and ``perfprobe compare``), as argparse options.

Every option is declared once, in ``perfprobe.runs.options.SweepOptions``: its flags, help,
default, choices and group. The command line only spells the declarations as flags (the
connection options are added by the command, as every command that talks to a server does).
"""

from __future__ import annotations

import argparse

from perfprobe.commands.common import CONNECTION, add_declared
from perfprobe.runs.options import SweepOptions


def add_options(parser: argparse.ArgumentParser) -> None:
    names = [name for name in SweepOptions.declared() if name not in CONNECTION]
    add_declared(parser, names[:1])  # -m first, then --config, then the rest as declared
    parser.add_argument("--config", help="YAML file whose keys are this command's long options; flags override it")
    add_declared(parser, names[1:])
