"""``perfprobe compare``: wire vs system shared memory vs CUDA shared memory, across tensor sizes."""

from __future__ import annotations

import argparse
import sys

from perfprobe import exitcodes
from perfprobe.commands.common import add_connection_options


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from perfprobe.commands import sweep_options

    parser = subparsers.add_parser(
        "compare",
        help="compare wire, system shm and CUDA shm across tensor sizes",
        description="One sweep per transport and size; one CSV, one chart, one verdict per size.",
    )
    add_connection_options(parser)
    sweep_options.add_options(parser)
    parser.add_argument(
        "--transports",
        default="none,system,cuda",
        help="comma-separated: none (the wire), system, cuda (default all three)",
    )
    parser.add_argument(
        "--sizes",
        default="64KiB,1MiB,4MiB,16MiB",
        help="tensor sizes for a model with one variable dimension, ignored for fixed shapes "
        "(default 64KiB,1MiB,4MiB,16MiB)",
    )
    parser.set_defaults(run=run, subparser=parser)


def run(args: argparse.Namespace) -> int:
    from perfprobe.commands.console import ConsoleObserver
    from perfprobe.errors import RunInterrupted
    from perfprobe.runs.compare import compare
    from perfprobe.runs.options import SweepOptions
    from perfprobe.runs.plan import default_output_dir

    options = vars(SweepOptions.from_namespace(args))
    if options["output_dir"] is None and options["model"]:
        options["output_dir"] = str(default_output_dir(options["model"], "compare"))
    code = exitcodes.OK
    try:
        result = compare(transports=args.transports, sizes=args.sizes, observer=ConsoleObserver(), **options)
    except RunInterrupted as stopped:
        if stopped.result is None:
            raise
        result, code = stopped.result, exitcodes.INTERRUPTED
        print("interrupted: the cells measured so far are written", file=sys.stderr, flush=True)
    for line in result.verdicts:
        print(line)
    print(f"\nresults: {options['output_dir']}/compare.csv, verdict.txt", flush=True)
    if result.report_written:
        print(f"report: {options['output_dir']}/summary.md, report.html, charts/", flush=True)
    return code
