"""``perfprobe sweep``: throughput and latency across concurrency or request-rate levels."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from perfprobe.commands.common import add_connection_options, parse_headers
from perfprobe.commands.sweep_options import SweepPlan, plan_from_args
from perfprobe.errors import AllRequestsFailed, UsageError


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
    from perfprobe.interrupts import sigterm_as_interrupt

    plan = plan_from_args(args)
    with sigterm_as_interrupt():
        return _run(plan, args)


def _run(plan: SweepPlan, args: argparse.Namespace) -> int:
    from perfprobe.client import make_client
    from perfprobe.client.factory import timeout_options

    if plan.shared_memory == "cuda":
        from perfprobe.shm import cuda

        cuda.require_device(plan.cuda_device)  # refuse before any server or load starts

    server = None
    url = plan.url
    if plan.serve:
        from perfprobe.server import EmbeddedServer

        server = EmbeddedServer(model_repositories=plan.serve_repositories, pick_free_ports=True).start()
        url = server.url(plan.protocol)
    if not plan.metrics_url:
        from perfprobe.commands.sweep_options import default_metrics_url

        plan.metrics_url = server.metrics_url if server is not None else default_metrics_url(url)
    try:
        headers = parse_headers(args.header)
        control_options = timeout_options(plan.protocol, plan.request_timeout_s)
        with make_client(plan.protocol, url, headers=headers, **control_options) as control:
            return _sweep(plan, url, control, headers)
    finally:
        if server is not None:
            server.stop()


def _sweep(plan: SweepPlan, url: str, control: Any, headers: dict[str, str]) -> int:
    from perfprobe.load import dataset
    from perfprobe.load.transport import build_transport, check_combination

    model = control.describe_model(plan.model)
    check_combination(plan.protocol, plan.mode, model.decoupled)
    items = dataset.load_items(model, plan.data)
    _check_writable(plan.output_dir(model.name))  # before any load: a measurement must not be lost at the end
    transport = build_transport(
        plan.protocol,
        url,
        plan.mode,
        plan.workers,
        plan.max_workers,
        {"headers": headers},
        plan.request_timeout_s,
        plan.decode_outputs,
    )
    regions = None
    if plan.shared_memory in ("system", "cuda"):
        from perfprobe.shm import region_set

        regions = region_set(plan.shared_memory, "sweep", plan.cuda_device)
    try:
        per_worker = None
        if regions is not None:
            from perfprobe.load.shm_requests import build_shm_requests

            per_worker = build_shm_requests(
                transport.shared_client,
                control,
                model,
                items,
                plan.max_workers,
                regions,
                plan.output_shm_size,
                plan.data.batch_size,
            )
            requests: list[Any] = []
        else:
            requests = dataset.build_requests(transport.shared_client, model, items)
        return _measure(plan, url, control, model, transport, requests, per_worker)
    finally:
        # SIGTERM arrives as KeyboardInterrupt (see run), so this runs on every way out; the
        # regions' close holds further signals back until every region is released
        if regions is not None:
            for problem in regions.close():  # only our regions, by name; never "unregister all"
                print(f"  warning: {problem}", file=sys.stderr)
        transport.shared_client.close()


def _check_writable(directory: Path) -> None:
    """Refuse, before any load, an output directory that cannot take the results."""
    probe = directory / ".perfprobe-write-check"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--output-dir {directory}: cannot write results there ({exc.strerror or exc})") from None


def _measure(
    plan: SweepPlan,
    url: str,
    control: Any,
    model: Any,
    transport: Any,
    requests: list[Any],
    per_worker: list[list[Any]] | None,
) -> int:
    from perfprobe import __version__
    from perfprobe.load.engine import LoadEngine
    from perfprobe.load.sweeper import Sweeper
    from perfprobe.report import results as report

    composing = [step.model_name for step in model.ensemble_steps]
    sweeper = Sweeper(
        lambda recorder: LoadEngine(
            transport.runtime, transport.sender_factory, requests, recorder, plan.engine, per_worker
        ),
        control,
        [model.name, *composing],
        plan.measure,
        plan.metrics_url,
        on_window=_live_row(plan),
    )
    server_meta = control.server_metadata()
    document: dict[str, Any] = {
        "perfprobe_version": __version__,
        "server": {
            "name": server_meta.get("name"),
            "version": server_meta.get("version"),
            "extensions": server_meta.get("extensions", []),
        },
        "model": {
            "name": model.name,
            "config_digest": model.config_digest,
            "max_batch_size": model.max_batch_size,
            "decoupled": model.decoupled,
            "composing_models": composing,
        },
        "arguments": plan.arguments,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "levels": [],
    }
    out_dir = plan.output_dir(model.name)
    rows: list[dict[str, Any]] = []
    for note in transport.notes:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"perfprobe sweep: {model.name} over {plan.protocol} at {url}, mode {plan.mode}, "
        f"{transport.runtime.kind} workers, tensors via {plan.shared_memory.replace('none', 'the wire')}, "
        f"{plan.load_kind} {plan.describe_levels()}",
        flush=True,
    )
    print(_LIVE_HEADER, flush=True)
    exit_code = 0
    try:
        for result in _levels(plan, sweeper):
            rows.append(report.level_row(result, plan.data.batch_size, composing or None))
            document["levels"].append(report.level_document(result, plan.data.batch_size))
            _write(out_dir, plan, rows, document)
            for warning in result.warnings:
                print(f"  warning: {warning}", flush=True)
    except KeyboardInterrupt:
        exit_code = 130
        print("interrupted: results measured so far are written", file=sys.stderr)
    finally:
        document["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        _write(out_dir, plan, rows, document)
    _summary(rows, plan, out_dir)
    if plan.report and rows:
        from perfprobe.commands.report import write_report_safely

        write_report_safely(out_dir, plan.latency_budget)
    if rows and all(row["Completed"] == 0 for row in rows):
        raise AllRequestsFailed("every request failed: " + (rows[-1]["Warnings"] or "see the JSON"))
    return exit_code


def _levels(plan: SweepPlan, sweeper: Any):
    """Run the levels in order (or by binary search), stopping past the latency threshold."""
    from perfprobe.load.schedule import Schedule

    def run_one(level: float):
        if plan.load_kind == "concurrency":
            return sweeper.run_level("concurrency", level)
        if plan.intervals_us:
            schedule = Schedule.from_intervals(plan.intervals_us)
        else:
            schedule = Schedule.at_rate(level, plan.distribution, seed=plan.data.seed)
        return sweeper.run_level("rate", level, schedule, plan.max_workers)

    def over(result) -> bool:
        if plan.latency_threshold_ms is None:
            return False
        value = result.merged().latency.summary().get(plan.measure.stability.latency_key, 0)
        return value > plan.latency_threshold_ms * 1000

    if plan.binary_search and len(plan.levels) > 1:
        yield from _binary_search(plan, run_one, over)
        return
    for level in plan.levels:
        result = run_one(level)
        yield result
        if over(result):
            print(
                f"stopping: {plan.measure.stability.latency_key} latency passed "
                f"{plan.latency_threshold_ms:g} ms at {plan.load_kind} {level:g}",
                flush=True,
            )
            return


def _binary_search(plan: SweepPlan, run_one, over):
    low, high = 0, len(plan.levels) - 1
    first = run_one(plan.levels[low])
    yield first
    if over(first):
        return
    last = run_one(plan.levels[high])
    yield last
    if not over(last):
        return
    while high - low > 1:
        middle = (low + high) // 2
        result = run_one(plan.levels[middle])
        yield result
        if over(result):
            high = middle
        else:
            low = middle
    print(f"highest {plan.load_kind} under {plan.latency_threshold_ms:g} ms: {plan.levels[low]:g}", flush=True)


_LIVE_HEADER = f"{'level':>8} {'window':>6} {'infer/s':>10} {'p50 us':>9} {'p99 us':>9} {'errors':>6}  stable"


def _live_row(plan: SweepPlan):
    def show(result, record) -> None:
        summary = record.stats.latency.summary()
        print(
            f"{result.level:>8g} {len(result.windows):>6} {record.stats.throughput(plan.data.batch_size):>10.1f} "
            f"{summary.get('p50', 0):>9} {summary.get('p99', 0):>9} {record.stats.error_count:>6}  "
            f"{'yes' if result.stable else 'no'}",
            flush=True,
        )

    return show


def _write(out_dir: Path, plan: SweepPlan, rows: list[dict[str, Any]], document: dict[str, Any]) -> None:
    from perfprobe.report import results as report

    report.write_csv(out_dir / "results.csv", plan.load_kind, rows)
    report.write_json(out_dir / "results.json", document)
    if plan.csv_file:
        report.write_csv(Path(plan.csv_file), plan.load_kind, rows)


def _summary(rows: list[dict[str, Any]], plan: SweepPlan, out_dir: Path) -> None:
    from perfprobe.commands.describe import format_table
    from perfprobe.report.results import LOAD_COLUMN

    key = LOAD_COLUMN[plan.load_kind]
    table = [
        [
            str(r[key]),
            f"{r['Inferences/Second']:.1f}",
            str(r["p50 latency"]),
            str(r["p99 latency"]),
            str(r["Errors"]),
            r["Stable"],
        ]
        for r in rows
    ]
    print()
    print(format_table([key.lower(), "infer/s", "p50 us", "p99 us", "errors", "stable"], table))
    print(f"\nresults: {out_dir / 'results.csv'} and results.json", flush=True)


__all__ = ["add_parser", "run", "UsageError"]
