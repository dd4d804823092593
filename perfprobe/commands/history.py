"""``perfprobe history add|show|detect``: runs kept in an SQLite file, a figure's series, its change points.

Exit codes: 0 done; 2 a bad metric or option; 7 a run directory unreadable, or a history database
that is missing, locked, corrupt or of another schema (nothing written to it).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from perfprobe.errors import UsageError

_METRIC = re.compile(
    r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_.()]*)\s*@\s*(?P<kind>c|concurrency|rate)\s*=\s*(?P<level>[0-9.]+)\s*$"
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "history",
        help="keep runs in a history database; show a figure across runs; find where it changed",
        description="Exit 0 done, 2 bad option, 7 run unreadable or database locked, corrupt or of another schema.",
    )
    commands = parser.add_subparsers(dest="history_command", required=True)
    add = commands.add_parser("add", help="add runs (their levels, runs and settings) to the history")
    add.add_argument("run_dirs", nargs="+", metavar="RUN", help="sweep run directories")
    _database_option(add)
    add.set_defaults(run=run_add)
    for name, helped in (
        ("show", "print (and with --chart, draw) a figure at one level across the history's runs"),
        ("detect", "find the change points in a figure's series across runs (Mann-Whitney binary segmentation)"),
    ):
        command = commands.add_parser(name, help=helped)
        command.add_argument("-m", "--model", required=True, help="the model whose runs to read")
        command.add_argument("--metric", required=True, metavar="NAME@c=N", help="e.g. p99@c=8, throughput@rate=100")
        command.add_argument("-i", "--protocol", help="only runs over this protocol (default: all)")
        _database_option(command)
        if name == "show":
            command.add_argument("--chart", metavar="FILE", help="also draw the series (PNG or SVG, by suffix)")
            command.set_defaults(run=run_show)
        else:
            command.add_argument("--alpha", type=float, default=0.01, help="significance of a change (default 0.01)")
            command.add_argument(
                "--min-change", default="5%", help="smallest shift of the median reported (default 5%%)"
            )
            command.add_argument("--min-segment", type=int, default=3, help="runs on each side at least (default 3)")
            command.set_defaults(run=run_detect)
    parser.set_defaults(subparser=parser)


def _database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", metavar="PATH", help="the history database (default ~/.local/share/perfprobe/history.db)"
    )


def _database(args: argparse.Namespace) -> Path:
    from perfprobe.history.store import default_path

    return Path(args.db) if args.db else default_path()


def run_add(args: argparse.Namespace) -> int:
    from perfprobe.history import store
    from perfprobe.report.rundata import load_sweep

    database = _database(args)
    runs = [load_sweep(path) for path in args.run_dirs]  # every run read before any is written
    for run in runs:
        run_id, added = store.add(database, run)
        print(f"{run.path}: run #{run_id} {'added to' if added else 'already in'} {database}")
    return 0


def _metric_and_level(text: str) -> tuple[str, float]:
    from perfprobe.history.store import canonical

    match = _METRIC.match(text)
    if not match:
        raise UsageError(f"--metric {text!r}: expected NAME@c=N or NAME@rate=N, e.g. p99@c=8")
    try:
        name = canonical(match["name"])
    except KeyError as exc:
        raise UsageError(f"--metric {text!r}: {exc.args[0]}") from None
    return name, float(match["level"])


def _series(args: argparse.Namespace) -> tuple[str, float, list]:
    from perfprobe.history import store

    name, level = _metric_and_level(args.metric)
    runs = store.series(_database(args), {"model": args.model, "protocol": args.protocol}, name, level)
    if not runs:
        raise UsageError(f"the history has no run of {args.model} with {args.metric}")
    return name, level, runs


def run_show(args: argparse.Namespace) -> int:
    from perfprobe.history.changes import change_points
    from perfprobe.measure.intervals import interval
    from perfprobe.report import level_metrics

    name, _, runs = _series(args)
    method = level_metrics.metric(name).across_runs
    print(f"{args.model} {args.metric}: {len(runs)} runs")
    estimates = []
    for run in runs:
        found = interval(run.values, method)
        value = found.point if found else run.values[0]
        estimates.append(found.as_tuple() if found else (value, value, value))
        spread = f" (95% CI {found.low:.6g}–{found.high:.6g}, {found.runs} runs)" if found else ""
        print(f"  {run.label:60} {value:.6g}{spread}  {run.machine}")
    if args.chart:
        from perfprobe.report.charts import history_series, save_as

        values = [run.values for run in runs]
        changes = [point.index for point in change_points(values)]
        drawn = history_series([f"#{run.id}" for run in runs], estimates, values, args.metric, changes)
        save_as(drawn, Path(args.chart))
        print(f"chart: {args.chart}")
    return 0


def run_detect(args: argparse.Namespace) -> int:
    from perfprobe.history.changes import change_points
    from perfprobe.units import parse_fraction

    _, _, runs = _series(args)
    text = str(args.min_change).strip()
    try:
        min_change = parse_fraction(text)
    except ValueError:
        raise UsageError(f"--min-change {text!r}: expected a percentage, e.g. 5%") from None
    if not 0 < args.alpha < 1 or args.min_segment < 1 or min_change < 0:
        raise UsageError("--alpha must be between 0 and 1, --min-segment at least 1, --min-change not negative")
    points = change_points([run.values for run in runs], args.alpha, min_change, args.min_segment)
    if not points:
        print(f"{args.model} {args.metric}: no change point in {len(runs)} runs (alpha {args.alpha:g})")
        return 0
    for point in points:
        print(
            f"{args.model} {args.metric}: change at {runs[point.index].label}: median {point.before:.6g} → "
            f"{point.after:.6g} ({point.change:+.1%}, p {point.p_value:.2g})"
        )
    return 0
