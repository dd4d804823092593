"""``perfprobe gate RUN_DIR``: fail CI when a run breaks a threshold or regresses against a baseline.

Exit codes: 0 all gates passed; 6 a gate failed; 2 a bad expression or option; 7 a run
directory missing or unreadable. JUnit XML and the GitHub step summary are written either way.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from perfprobe import exitcodes
from perfprobe.errors import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gate",
        help="check a run against thresholds and a baseline (for CI)",
        description="Thresholds like p99<5ms, p(99.9)<20ms, throughput>800, error_rate<0.01, server_queue<1ms, "
        "p99@c=8<5ms; with --baseline, a noise-aware two-sided comparison. "
        "Exit 0 pass, 6 a gate failed, 2 bad expression, 7 run missing.",
    )
    parser.add_argument("run_dir", help="the run to check")
    parser.add_argument("--baseline", help="a previous run to compare with")
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
    parser.add_argument("--config", help="YAML whose keys are these long options (threshold: a list)")
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML here")
    parser.set_defaults(run=run, subparser=parser)


def run(args: argparse.Namespace) -> int:
    from perfprobe.gates import baseline as baseline_gate
    from perfprobe.gates import publish, thresholds
    from perfprobe.report.rundata import load_sweep

    started = time.monotonic()
    try:
        parsed = [thresholds.parse(text) for text in _as_list(args.threshold)]
        limits = (
            baseline_gate.parse_limits(args.max_regression or baseline_gate.DEFAULT_LIMITS) if args.baseline else []
        )
    except thresholds.BadExpression as exc:
        raise UsageError(str(exc)) from None
    if not parsed and not args.baseline:
        raise UsageError("nothing to check: give --threshold, --baseline or a --config with them")
    run_data = load_sweep(args.run_dir)
    if not run_data.levels:
        from perfprobe.report.rundata import RunNotFound

        raise RunNotFound(f"{args.run_dir}: the run measured no load level")
    outcomes = [outcome for threshold in parsed for outcome in thresholds.check(run_data, threshold)]
    if args.baseline:
        baseline_run = load_sweep(args.baseline)
        try:
            baseline_gate.comparable(run_data, baseline_run, args.allow_different_model)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        outcomes += baseline_gate.compare(run_data, baseline_run, limits)
    for outcome in outcomes:
        print(outcome.line())
    notes = [run_data.unstable_note("the run")]
    if args.baseline:
        notes.append(baseline_run.unstable_note("the baseline"))
    for note in filter(None, notes):
        print(note)
    title = f"perfprobe gate {run_data.name}" + (f" vs {Path(args.baseline).name}" if args.baseline else "")
    if args.junit:
        path = Path(args.junit)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(publish.junit_xml(outcomes, title, time.monotonic() - started))
    publish.append_step_summary(publish.markdown_table(outcomes, title))
    failed = [o for o in outcomes if o.failed]
    if failed:
        names = sorted({o.gate for o in failed})
        print(f"perfprobe: gate failed: {len(failed)} of {len(outcomes)} checks ({', '.join(names)})", file=sys.stderr)
        return exitcodes.GATE_FAILED
    print(f"all {len(outcomes)} checks passed")
    return exitcodes.OK


def _as_list(value: object) -> list[str]:
    """Thresholds from flags and config: a list, or one string from a YAML scalar."""
    if isinstance(value, str):
        return [value]
    return [str(v) for v in (value or [])]
