"""``perfprobe diff RUN_A RUN_B``: per-level changes in throughput and latency, with overlay charts."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from perfprobe.errors import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="how two sweeps differ, level by level",
        description="Prints and writes (diff.csv) the change in throughput and each percentile per load level, "
        "and overlay charts of both runs.",
    )
    parser.add_argument("run_a", help="the earlier (reference) run directory")
    parser.add_argument("run_b", help="the later run directory")
    parser.add_argument("--output-dir", help="where diff.csv and the charts go (default RUN_B/diff-vs-<RUN_A name>)")
    parser.add_argument(
        "--allow-different-model", action="store_true", help="diff runs of different models or protocols"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from perfprobe.gates.baseline import comparable
    from perfprobe.report.diff import level_changes, overlay_charts, unmatched_levels
    from perfprobe.report.rundata import load_sweep
    from perfprobe.report.text_table import format_table

    run_a, run_b = load_sweep(args.run_a), load_sweep(args.run_b)
    if run_a.load_kind != run_b.load_kind:
        raise UsageError(f"cannot diff a {run_a.load_kind} sweep with a {run_b.load_kind} sweep")
    try:
        comparable(run_b, run_a, args.allow_different_model)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    rows = level_changes(run_a, run_b)
    if not rows:
        raise UsageError("the two runs share no load level: nothing to compare")
    out_dir = Path(args.output_dir or Path(args.run_b) / f"diff-vs-{run_a.name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "diff.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    overlay_charts(run_a, run_b, out_dir)
    print(f"A: {run_a.path} ({run_a.title})\nB: {run_b.path} ({run_b.title})\n")
    repeated = any(r["Change % CI low"] != "" for r in rows)
    table = [
        [
            r["Level"],
            r["Metric"] + (f" ({r['Unit']})" if r["Unit"] else ""),
            _number(r["A"]),
            _number(r["B"]),
            _number(r["Change"], sign=True),
            f"{r['Change %']:+.1f}%" if r["Change %"] != "" else "-",
            *([_change_interval(r)] if repeated else []),
            r["Better"],
        ]
        for r in rows
    ]
    ci = ["change 95% CI"] if repeated else []
    print(format_table(["level", "metric", "A", "B", "B - A", "change", *ci, "better"], table))
    for note in unmatched_levels(run_a, run_b):
        print(f"note: {note}")
    for note in (run_a.unstable_note("A"), run_b.unstable_note("B")):
        if note:
            print(note)
    print(f"\nwritten: {out_dir / 'diff.csv'}, diff_levels.png/.svg, diff_spectrum.png/.svg")
    return 0


def _change_interval(row: dict) -> str:
    """The change's 95% interval over the runs, or why there is none."""
    if row["Change % CI low"] == "":
        return "one run each"
    return f"{row['Change % CI low']:+.1f}% to {row['Change % CI high']:+.1f}%"


def _number(value: float, sign: bool = False) -> str:
    """Readable figures: thousands separated, small fractions (error rates) kept."""
    plus = "+" if sign else ""
    if value == int(value):
        return f"{int(value):{plus},}"
    if abs(value) < 1:
        return f"{value:{plus}.4g}"
    return f"{value:{plus},.1f}"
