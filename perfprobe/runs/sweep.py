"""A sweep as a library call: ``perfprobe.sweep("simple", concurrency="1:4")`` returns its results.

The run starts the embedded server when asked, prepares the requests (on the wire or in
shared memory), measures each load level the search picks, and writes results as it goes
when it has an output directory, so an interrupted or failed run keeps its finished levels.
Failures are exceptions carrying the exit code the command line maps them to, and, when some
levels were measured, the partial result (``exc.result``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from perfprobe.client import InferenceClient, make_client
from perfprobe.client.model import ModelDescription
from perfprobe.errors import AllRequestsFailed, PerfprobeError, RunInterrupted, UsageError
from perfprobe.greenlets import patched
from perfprobe.load.search import LatencyLimit, search_levels
from perfprobe.load.sendpath import SendPath, build_send_path, check_combination
from perfprobe.load.sweeper import LevelResult, Sweeper
from perfprobe.report import runfile
from perfprobe.runs.observer import RunObserver, SweepStart
from perfprobe.runs.options import SweepOptions
from perfprobe.runs.plan import SweepPlan, plan
from perfprobe.runs.result import SweepResult
from perfprobe.runs.target import Target, server_target


def sweep(model: str | None = None, *, observer: RunObserver | None = None, **options: Any) -> SweepResult:
    """Measure ``model`` across load levels; keyword names follow the long options of ``perfprobe sweep``.

    Nothing is written unless ``output_dir`` is given; ``result.save(dir)`` writes it later.
    """
    return run_sweep(plan(SweepOptions.from_keywords({"model": model, **options})), observer)


def run_sweep(sweep_plan: SweepPlan, observer: RunObserver | None = None) -> SweepResult:
    """Run a validated plan: server (embedded or not), control client, then the measurement."""
    if sweep_plan.shared_memory == "cuda":
        from perfprobe.shm import cuda

        cuda.require_device(sweep_plan.cuda_device)  # refuse before any server or load starts
    if sweep_plan.output_dir is not None:
        check_writable(sweep_plan.output_dir)  # before any load: a measurement must not be lost at the end
    with connected(sweep_plan) as (target, control):
        return measure_sweep(sweep_plan, target, control, observer or RunObserver())


@contextlib.contextmanager
def connected(sweep_plan: SweepPlan) -> Iterator[tuple[Target, InferenceClient]]:
    """The plan's server (started when it asks for ``serve``) and a control client for it.

    The control client reads metadata and statistics and registers shared memory; every call it
    makes is bounded by the plan's request timeout.
    """
    with (
        server_target(
            sweep_plan.protocol,
            sweep_plan.url,
            serve=sweep_plan.serve,
            repositories=sweep_plan.serve_repositories,
            metrics_url=sweep_plan.metrics_url,
        ) as target,
        make_client(
            target.protocol, target.url, headers=sweep_plan.headers, timeout_s=sweep_plan.request_timeout_s
        ) as control,
    ):
        yield target, control


def check_writable(directory: Path) -> None:
    """Refuse, before any load, an output directory that cannot take the results."""
    probe = directory / ".perfprobe-write-check"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--output-dir {directory}: cannot write results there ({exc.strerror or exc})") from None


def measure_sweep(
    sweep_plan: SweepPlan, target: Target, control: InferenceClient, observer: RunObserver
) -> SweepResult:
    """One sweep on a server that is already there (a compare runs several on one server)."""
    from perfprobe.load import dataset

    model = control.describe_model(sweep_plan.model)
    check_combination(sweep_plan.protocol, sweep_plan.mode, model.decoupled)
    items = dataset.load_items(model, sweep_plan.data)
    load_client = make_client(
        target.protocol,
        target.url,
        concurrency=sweep_plan.max_inflight,
        headers=sweep_plan.headers,
        timeout_s=sweep_plan.request_timeout_s,
    )
    send_path: SendPath | None = None
    try:
        send_path = build_send_path(
            load_client,
            sweep_plan.mode,
            sweep_plan.worker_kind,
            sweep_plan.request_timeout_s,
            sweep_plan.decode_outputs,
        )
        with _regions(sweep_plan, observer) as regions:
            if regions is not None:
                from perfprobe.load.shm_requests import build_shm_requests

                requests: list[Any] = []
                per_worker = build_shm_requests(
                    load_client,
                    control,
                    model,
                    items,
                    sweep_plan.max_inflight,
                    regions,
                    sweep_plan.output_shm_size,
                    sweep_plan.data.batch_size,
                )
            else:
                requests, per_worker = dataset.build_requests(load_client, model, items), None
            sweeper = _sweeper(sweep_plan, target, control, model, send_path, requests, per_worker, observer)
            return _measure_levels(sweep_plan, target, control, model, sweeper, send_path, observer)
    finally:
        if send_path is not None:
            send_path.runtime.close()
        load_client.close()


@contextlib.contextmanager
def _regions(sweep_plan: SweepPlan, observer: RunObserver) -> Iterator[Any]:
    """The run's shared-memory regions, released on every way out (signals held back meanwhile)."""
    if sweep_plan.shared_memory not in ("system", "cuda"):
        yield None
        return
    from perfprobe.shm import region_set

    regions = region_set(sweep_plan.shared_memory, "sweep", sweep_plan.cuda_device)
    try:
        yield regions
    finally:
        for problem in regions.close():  # only our regions, by name; never "unregister all"
            observer.note(f"warning: {problem}")


def _sweeper(
    sweep_plan: SweepPlan,
    target: Target,
    control: InferenceClient,
    model: ModelDescription,
    send_path: SendPath,
    requests: list[Any],
    per_worker: list[list[Any]] | None,
    observer: RunObserver,
) -> Sweeper:
    from perfprobe.load.engine import LoadEngine

    composing = [step.model_name for step in model.ensemble_steps]
    return Sweeper(
        lambda recorder: LoadEngine(
            send_path.runtime, send_path.sender_factory, requests, recorder, sweep_plan.engine, per_worker
        ),
        control,
        [model.name, *composing],
        sweep_plan.measure,
        target.metrics_url,
        on_window=observer.window,
    )


def _measure_level(sweep_plan: SweepPlan, sweeper: Sweeper, level: float) -> LevelResult:
    from perfprobe.load.schedule import Schedule

    if sweep_plan.load_kind == "concurrency":
        return sweeper.run_level("concurrency", level)
    if sweep_plan.intervals_us:
        schedule = Schedule.from_intervals(sweep_plan.intervals_us)
    else:
        schedule = Schedule.at_rate(level, sweep_plan.distribution, seed=sweep_plan.data.seed)
    return sweeper.run_level("rate", level, schedule, sweep_plan.max_inflight)


def _measure_levels(
    sweep_plan: SweepPlan,
    target: Target,
    control: InferenceClient,
    model: ModelDescription,
    sweeper: Sweeper,
    send_path: SendPath,
    observer: RunObserver,
) -> SweepResult:
    server_meta = control.server_metadata()
    model_facts = {
        "name": model.name,
        "config_digest": model.config_digest,
        "max_batch_size": model.max_batch_size,
        "decoupled": model.decoupled,
        "composing_models": [step.model_name for step in model.ensemble_steps],
    }
    settings = sweep_plan.recorded(target)
    settings["worker_kind"] = send_path.runtime.kind  # what ran (HTTP async runs on greenlets whatever was asked)
    result = SweepResult(
        model=model,
        load_kind=sweep_plan.load_kind,
        batch_size=sweep_plan.data.batch_size,
        document=runfile.new_document(settings, server_meta, model_facts),
        output_dir=sweep_plan.output_dir,
    )
    for text in send_path.notes:
        observer.note(text)
    if send_path.runtime.kind == "greenlet" and not patched():
        observer.note(
            "greenlet workers without gevent's patching: a blocking call between sends (a metrics scrape) "
            "holds every worker; call perfprobe.patch_for_greenlets() first thing"
        )
    observer.started(
        SweepStart(
            model.name,
            sweep_plan.protocol,
            target.url,
            sweep_plan.mode,
            send_path.runtime.kind,
            sweep_plan.shared_memory,
            sweep_plan.load_kind,
            sweep_plan.describe_levels(),
            sweep_plan.data.batch_size,
        )
    )
    limit = None
    if sweep_plan.latency_threshold_ms is not None:
        limit = LatencyLimit(sweep_plan.measure.stability.latency_key, sweep_plan.latency_threshold_ms * 1000)
    levels = search_levels(
        sweep_plan.levels,
        lambda level: _measure_level(sweep_plan, sweeper, level),
        limit,
        sweep_plan.binary_search,
        observer.decided,
    )
    try:
        for level in levels:
            result.add(level)
            _write(result, sweep_plan)
            observer.level_done(level)
    except KeyboardInterrupt:
        result.interrupted = True
    except PerfprobeError as exc:  # the server went away, the load broke: the levels before it stay
        exc.result = result
        raise
    finally:
        runfile.finish(result.document)
        _write(result, sweep_plan)
    _write_report(result, sweep_plan, observer)
    observer.finished(result)
    if result.interrupted:
        raise RunInterrupted("interrupted: results measured so far are kept", result)
    if result.rows and all(row["Completed"] == 0 for row in result.rows):
        raise AllRequestsFailed("every request failed: " + (result.rows[-1]["Warnings"] or "see the JSON"), result)
    return result


def _write(result: SweepResult, sweep_plan: SweepPlan) -> None:
    if result.output_dir is not None:
        result.save(result.output_dir, csv_copy=sweep_plan.csv_file)
    elif sweep_plan.csv_file:
        from perfprobe.report.results import write_csv

        write_csv(Path(sweep_plan.csv_file), result.load_kind, result.rows)


def _write_report(result: SweepResult, sweep_plan: SweepPlan, observer: RunObserver) -> None:
    if result.output_dir is None or not sweep_plan.report or not result.rows:
        return
    from perfprobe.report.build import write_report
    from perfprobe.report.summary import parse_budget

    directory = result.output_dir  # results.csv and .json are written already: only the report is left
    budget = parse_budget(sweep_plan.latency_budget)
    result.report_written = report_safely(lambda: write_report(directory, budget), directory, observer)


def report_safely(write: Callable[[], object], directory: Path, observer: RunObserver) -> bool:
    """Charts and summaries at the end; a chart problem never costs the results already written."""
    try:
        write()
    except Exception as exc:  # the CSV and JSON are written; say what failed and go on
        observer.note(f"warning: report not written ({type(exc).__name__}: {exc}); run perfprobe report {directory}")
        return False
    return True
