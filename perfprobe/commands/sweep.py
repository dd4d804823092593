"""``perfprobe sweep``: throughput and latency across concurrency or request-rate levels."""

from __future__ import annotations

import argparse

from perfprobe import exitcodes
from perfprobe.commands.common import add_connection_options


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from perfprobe.commands import sweep_options

    parser = subparsers.add_parser(
        "sweep",
        help="measure throughput and latency across load levels",
        description="Closed-loop (--concurrency) or open-loop (--request-rate / --request-intervals) load, "
        "measured in windows until stable, written as perf_analyzer-compatible CSV plus JSON.",
    )
    add_connection_options(parser)
    sweep_options.add_options(parser)
    parser.set_defaults(run=run, subparser=parser)


def run(args: argparse.Namespace) -> int:
    from perfprobe.commands.console import ConsoleObserver
    from perfprobe.errors import RunInterrupted
    from perfprobe.runs.options import SweepOptions
    from perfprobe.runs.plan import default_output_dir, plan
    from perfprobe.runs.sweep import run_sweep

    options = SweepOptions.from_namespace(args)
    if options.output_dir is None and options.model:
        options.output_dir = str(default_output_dir(options.model))
    try:
        run_sweep(plan(options), ConsoleObserver())
    except RunInterrupted:
        return exitcodes.INTERRUPTED  # the observer said so; the levels measured are written
    return exitcodes.OK
