"""``perfprobe report RUN_DIR``: charts (PNG + SVG), summary.md and a self-contained report.html."""

from __future__ import annotations

import argparse

from perfprobe.errors import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="charts and a summary of a sweep or compare run",
        description="Writes charts/*.png and *.svg, summary.md and report.html into the run directory. "
        "sweep and compare do this on their own at the end of a run.",
    )
    parser.add_argument("run_dir", help="a run directory (results.csv + results.json, or compare.csv)")
    parser.add_argument(
        "--latency-budget",
        metavar="[METRIC=]DURATION",
        help="name the highest load whose latency stays within this, e.g. 5ms or p95=2ms (default metric p99)",
    )
    parser.add_argument("--dpi", type=int, default=100, help="PNG resolution (default 100: 1000x550 pixels)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from perfprobe.report.build import write_report
    from perfprobe.report.summary import parse_budget

    budget = parse_budget(args.latency_budget)
    if not 20 <= args.dpi <= 1200:
        raise UsageError(f"--dpi {args.dpi}: give 20 to 1200 (100 makes 1000x550 pixels)")
    report = write_report(args.run_dir, budget, dpi=args.dpi)
    for path in report.files:
        print(path)
    return 0
