"""``perfprobe report RUN_DIR``: charts (PNG + SVG), summary.md and a self-contained report.html."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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


def parse_budget(text: str | None):
    """``5ms`` or ``p95=2ms`` → LatencyBudget; UsageError naming the option otherwise."""
    from perfprobe.report import level_metrics
    from perfprobe.report.summary import LatencyBudget
    from perfprobe.units import parse_duration_us

    if not text:
        return None
    name, _, amount = text.rpartition("=")
    name = name or "p99"
    try:
        metric = level_metrics.metric(name)
        if metric.kind != "latency":
            raise KeyError(f"{name!r} is not a latency")
        return LatencyBudget(metric.name, parse_duration_us(amount))
    except (KeyError, ValueError) as exc:
        raise UsageError(f"--latency-budget {text!r}: {exc.args[0]}") from None


def run(args: argparse.Namespace) -> int:
    from perfprobe.report.build import write_report

    budget = parse_budget(args.latency_budget)
    if args.dpi <= 0:
        raise UsageError("--dpi must be positive")
    report = write_report(args.run_dir, budget, dpi=args.dpi)
    for path in report.files:
        print(path)
    return 0


def write_report_safely(out_dir: Path, latency_budget: str | None) -> None:
    """Charts and summaries at the end of a run; a chart problem never costs the results."""
    from perfprobe.report.build import write_report

    try:
        report = write_report(out_dir, parse_budget(latency_budget))
    except Exception as exc:  # the CSV and JSON are written; say what failed and go on
        print(
            f"  warning: report not written ({type(exc).__name__}: {exc}); run perfprobe report {out_dir}",
            file=sys.stderr,
        )
        return
    print(f"report: {report.directory / 'summary.md'}, report.html, charts/", flush=True)
