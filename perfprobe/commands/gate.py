"""``perfprobe gate RUN_DIR``: fail CI when a run breaks a threshold or regresses against a baseline.

Exit codes: 0 all gates passed; 6 a gate failed; 8 none failed but some were inconclusive (the
change's interval straddles the limit: more runs would decide it); 2 a bad expression or option;
7 a run directory missing or unreadable. JUnit XML and the GitHub step summary are written either way.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from perfprobe import exitcodes
from perfprobe.errors import UsageError

if TYPE_CHECKING:
    from perfprobe.gates.baseline import Limit
    from perfprobe.gates.outcome import Outcome
    from perfprobe.gates.thresholds import Threshold
    from perfprobe.report.rundata import SweepRun


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gate",
        help="check a run against thresholds and a baseline (for CI)",
        description="Thresholds like p99<5ms, p(99.9)<20ms, throughput>800, error_rate<0.01, server_queue<1ms, "
        "p99@c=8<5ms; with --baseline, a two-sided comparison whose verdict is regression, pass or inconclusive "
        "by where the change's 95%% interval lies against the limit. "
        "Exit 0 pass, 6 a gate failed, 8 inconclusive (none failed), 2 bad expression, 7 run missing.",
    )
    parser.add_argument("run_dir", help="the run to check")
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        help="a previous run to compare with; repeat for several runs of the baseline (their runs pool)",
    )
    parser.add_argument(
        "--threshold", "-t", action="append", default=[], metavar="EXPR", help="a threshold; repeat for more"
    )
    parser.add_argument(
        "--max-regression",
        metavar="LIMITS",
        help="with --baseline: largest allowed worsening per metric (default throughput=5%%,p99=10%%)",
    )
    parser.add_argument(
        "--allow-different-model",
        action="store_true",
        help="compare with a baseline of another model or protocol (refused otherwise)",
    )
    parser.add_argument(
        "--against-history",
        nargs="?",
        const="",
        metavar="DB",
        help="compare with the comparable runs of this history database since the figure's last change point "
        "(DB omitted: ~/.local/share/perfprobe/history.db)",
    )
    parser.add_argument("--history", metavar="DB", help="add the run to this history database after the gate")
    parser.add_argument("--config", help="YAML whose keys are these long options (threshold: a list)")
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML here")
    parser.set_defaults(run=run, subparser=parser)


def run(args: argparse.Namespace) -> int:
    from perfprobe.gates import baseline as baseline_gate
    from perfprobe.gates import publish, thresholds
    from perfprobe.report.rundata import load_sweep

    started = time.monotonic()
    compared = bool(args.baseline) or args.against_history is not None
    try:
        parsed = [thresholds.parse(text) for text in _as_list(args.threshold)]
        limits = baseline_gate.parse_limits(args.max_regression or baseline_gate.DEFAULT_LIMITS) if compared else []
    except thresholds.BadExpression as exc:
        raise UsageError(str(exc)) from None
    if not parsed and not compared:
        raise UsageError("nothing to check: give --threshold, --baseline, --against-history or a --config with them")
    run_data = load_sweep(args.run_dir)
    if not run_data.levels:
        from perfprobe.report.rundata import RunNotFound

        raise RunNotFound(f"{args.run_dir}: the run measured no load level")
    baseline_runs = [load_sweep(path) for path in _as_list(args.baseline)]
    outcomes = _outcomes(args, run_data, parsed, limits, baseline_runs)
    for outcome in outcomes:
        print(outcome.line())
    notes = [run_data.unstable_note("the run"), *(base.unstable_note("the baseline") for base in baseline_runs)]
    notes.append(_stability_note(run_data, parsed, limits))
    for note in filter(None, notes):
        print(note)
    against = [base.name for base in baseline_runs] + (["its history"] if args.against_history is not None else [])
    title = f"perfprobe gate {run_data.name}" + (f" vs {', '.join(against)}" if against else "")
    if args.junit:
        path = Path(args.junit)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(publish.junit_xml(outcomes, title, time.monotonic() - started))
    publish.append_step_summary(publish.markdown_table(outcomes, title))
    if args.history:
        _remember(run_data, args.history)
    return _verdict(outcomes)


def _outcomes(
    args: argparse.Namespace,
    run_data: SweepRun,
    parsed: list[Threshold],
    limits: list[Limit],
    baseline_runs: list[SweepRun],
) -> list[Outcome]:
    """Thresholds, then the baselines given, then the history: every check's outcome at every level."""
    from perfprobe.gates import baseline as baseline_gate
    from perfprobe.gates import thresholds

    outcomes = [outcome for threshold in parsed for outcome in thresholds.check(run_data, threshold)]
    for baseline_run in baseline_runs:
        try:
            baseline_gate.comparable(run_data, baseline_run, args.allow_different_model)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if baseline_runs:
        outcomes += baseline_gate.compare(run_data, baseline_runs, limits)
    if args.against_history is not None:
        from perfprobe.history.store import default_path

        outcomes += baseline_gate.against_history(run_data, args.against_history or default_path(), limits)
    return outcomes


def _remember(run_data: SweepRun, database: str) -> None:
    from perfprobe.history import store

    run_id, added = store.add(database, run_data)
    print(f"history: run #{run_id} {'added to' if added else 'already in'} {database}")


def _verdict(outcomes: list[Outcome]) -> int:
    """Failed (6) over inconclusive (8) over passed (0), with the line that says which on stderr."""
    from perfprobe.gates.outcome import INCONCLUSIVE, SKIPPED

    failed = [o for o in outcomes if o.failed]
    if failed:
        names = sorted({o.gate for o in failed})
        print(f"perfprobe: gate failed: {len(failed)} of {len(outcomes)} checks ({', '.join(names)})", file=sys.stderr)
        return exitcodes.GATE_FAILED
    undecided = [o for o in outcomes if o.status == INCONCLUSIVE]
    if undecided:
        names = sorted({o.gate for o in undecided})
        print(
            f"perfprobe: gate inconclusive: {len(undecided)} of {len(outcomes)} checks within noise of their limit "
            f"({', '.join(names)}); none failed. More runs (--repeats) would decide them",
            file=sys.stderr,
        )
        return exitcodes.GATE_INCONCLUSIVE
    skipped = sum(1 for o in outcomes if o.status == SKIPPED)
    print(f"all {len(outcomes) - skipped} checks passed" + (f" ({skipped} skipped)" if skipped else ""))
    return exitcodes.OK


def _stability_note(run: SweepRun, parsed: list[Threshold], limits: list[Limit]) -> str | None:
    """A gated percentile the run's stability never watched: its windows agreed on another latency."""
    from perfprobe.report.level_metrics import gated_percentile

    watched = str(run.settings.get("stability_latency") or "mean")
    percentiles = {gated_percentile(m.name) for m in [*(t.metric for t in parsed), *(limit.metric for limit in limits)]}
    unwatched = sorted(p for p in percentiles if p is not None and f"p{p:g}" != watched)
    if not unwatched:
        return None
    return (
        f"note: {', '.join(f'p{p:g}' for p in unwatched)} gated, but the run's levels were held until their {watched} "
        f"latency was stable; sweep with --percentile {unwatched[0]:g} so the windows agree on what is gated"
    )


def _as_list(value: object) -> list[str]:
    """Thresholds and baselines from flags and config: a list, or one string from a YAML scalar."""
    if isinstance(value, str):
        return [value]
    return [str(v) for v in (value or [])]
