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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from perfprobe.client import InferenceClient, make_client
from perfprobe.client.abilities import ServerAbilities, learn
from perfprobe.client.datatypes import BINARY_ONLY
from perfprobe.client.errors import TIMEOUT
from perfprobe.client.model import ModelDescription
from perfprobe.client.tls import client_options
from perfprobe.errors import AllRequestsFailed, PerfprobeError, RunInterrupted, UsageError
from perfprobe.greenlets import patched
from perfprobe.load.prepare import LoadSpec, prepared_load
from perfprobe.load.search import LatencyLimit, search_levels
from perfprobe.load.sendpath import check_combination
from perfprobe.load.sweeper import LevelResult, Sweeper, error_codes
from perfprobe.load.windowed import WindowedLoad
from perfprobe.measure import metrics as prometheus
from perfprobe.measure.window import WindowStats, merge_stats
from perfprobe.report import runfile
from perfprobe.report.rundata import level_label
from perfprobe.runs.models import ModelPart
from perfprobe.runs.observer import RunObserver, SweepStart
from perfprobe.runs.options import SweepOptions
from perfprobe.runs.plan import SweepPlan, plan
from perfprobe.runs.result import SweepResult
from perfprobe.runs.server_check import check_shared_memory, check_streaming, check_tensor_format
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
    observer = observer or RunObserver()
    with connected(sweep_plan) as (target, control):
        result = measure_sweep(sweep_plan, target, control, observer)
    if sweep_plan.options.history and result.output_dir is not None:
        from perfprobe.history import store
        from perfprobe.report.rundata import load_sweep

        run_id, _ = store.add(sweep_plan.options.history, load_sweep(result.output_dir))
        observer.note(f"history: run #{run_id} added to {sweep_plan.options.history}")
    return result


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
            target.protocol,
            target.url,
            headers=sweep_plan.headers,
            timeout_s=sweep_plan.request_timeout_s,
            **client_options(sweep_plan.tls),
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
    sweep_plan: SweepPlan,
    target: Target,
    control: InferenceClient,
    observer: RunObserver,
    abilities: ServerAbilities | None = None,
) -> SweepResult:
    """One sweep on a server that is already there: every level, then again for each of ``--repeats``."""
    with sweep_session(sweep_plan, target, control, observer, abilities) as session:
        return session.run()


@contextlib.contextmanager
def sweep_session(
    sweep_plan: SweepPlan,
    target: Target,
    control: InferenceClient,
    observer: RunObserver,
    abilities: ServerAbilities | None = None,
) -> Iterator[SweepSession]:
    """A sweep's model, data and load prepared, ready to measure levels (a compare holds one per cell at once,
    to measure them in turn at each level).

    ``abilities``: what the server offers, when the caller learned it already (a compare, once for its cells).
    """
    from perfprobe.load.dataset import with_described_inputs

    plans = (
        [_plan_for(sweep_plan, part, first=index == 0) for index, part in enumerate(sweep_plan.parts)]
        if sweep_plan.several
        else [sweep_plan]
    )
    models = []
    for own, part in zip(plans, sweep_plan.parts, strict=True):
        described, note = with_described_inputs(control.describe_model(part.name), own.data)
        if note:
            observer.note(note)
        models.append(described)
    abilities = abilities or learn(control, models[0].name, models[0].config_known)
    check_shared_memory(sweep_plan.shared_memory, abilities)
    for model in models:
        check_combination(sweep_plan.protocol, sweep_plan.mode, model, sweep_plan.endpoint)
        for text in _binary_only_notes(sweep_plan, model):
            observer.note(text)
        if note := _prompts_note(sweep_plan, model):
            observer.note(note)
    loads = []
    checked_requests = 0
    for own, described in zip(plans, models, strict=True):
        items, spec = _data_and_spec(own, described, own.load_spec(target))
        check = check_tensor_format(spec, control, described, items, abilities)
        if check.note:
            observer.note(check.note)
        checked_requests += check.served + check_streaming(check.spec, control, described, items, abilities)
        loads.append((items, check.spec))
    spec = loads[0][1]
    metrics_url, metrics_missing = _metrics_url(sweep_plan, target, abilities, models[0].name)
    with _load_source(sweep_plan, loads, control, models, observer) as source:
        names = [
            name for described in models for name in (described.name, *(s.model_name for s in described.ensemble_steps))
        ]
        sweeper = Sweeper(
            source.make_load,
            control,
            list(dict.fromkeys(names)),
            sweep_plan.measure,
            metrics_url,
            on_window=observer.window,
            statistics_missing="" if abilities.has("statistics") else abilities.missing("statistics"),
            metrics_missing=metrics_missing,
        )
        server = ServerFacts(abilities, checked_requests)
        yield SweepSession(sweep_plan, target, models, sweeper, source, observer, spec, server)


@dataclass(frozen=True)
class ServerFacts:
    """What the run learned of the server before the load: its abilities, and the requests that cost."""

    abilities: ServerAbilities
    checked_requests: int  # served before the load, deciding the tensor format (in no window)


def _metrics_url(
    sweep_plan: SweepPlan, target: Target, abilities: ServerAbilities, model: str
) -> tuple[str | None, str]:
    """Where the server's Prometheus metrics are, or None and why not.

    The embedded server's are known; a URL asked for or one of Triton's default ports is used only
    when its page counts the measured model (another process there is not this server). A server
    that is not Triton has none of Triton's metrics.
    """
    if target.embedded:
        return target.metrics_urls[0], ""
    if not sweep_plan.metrics_url and abilities.name != "triton":
        return None, f"{abilities.title} has no Triton metrics (give --metrics-url for a Triton's)"
    reasons = []
    for url in target.metrics_urls:
        if not (reason := prometheus.not_this_servers(url, model)):
            return url, ""
        reasons.append(reason)
    return None, "; ".join(reasons) + ("" if sweep_plan.metrics_url else "; give --metrics-url")


def _prompts_note(sweep_plan: SweepPlan, model: ModelDescription) -> str:
    """What a generative model is sent and how its tokens are counted, said once at the start."""
    prompts = sweep_plan.data.prompts
    if sweep_plan.data.source not in ("random", "zero") or prompts is None or not prompts.applies_to(model):
        return ""
    unit = "tokens" if prompts.tokenizer else "words"
    spread = f" (stddev {prompts.prompt.stddev:g})" if prompts.prompt.stddev else ""
    said = f"{model.name}: {prompts.count} synthetic prompts of {prompts.prompt.mean:g} {unit}{spread}"
    if any(spec.name == "max_tokens" for spec in model.inputs):
        said += f", max_tokens {prompts.output.mean:g}" + (
            f" (stddev {prompts.output.stddev:g})" if prompts.output.stddev else ""
        )
    return f"{said}; tokens counted {sweep_plan.token_count()}"


def _binary_only_notes(sweep_plan: SweepPlan, model: ModelDescription) -> list[str]:
    """JSON tensors asked for, and tensors JSON cannot carry: they go binary, and the run says which."""
    notes = []
    for side, asked, specs in (
        ("input", sweep_plan.json_inputs, model.inputs),
        ("output", sweep_plan.json_outputs, model.outputs),
    ):
        kept = [f"{spec.name} ({spec.datatype})" for spec in specs if spec.datatype in BINARY_ONLY]
        if asked and kept:
            notes.append(f"{model.name}: {side}s {', '.join(kept)} stay binary: JSON cannot carry FP16 or BF16")
    return notes


def _plan_for(sweep_plan: SweepPlan, part: ModelPart, first: bool) -> SweepPlan:
    """The plan as one model of several sees it: its own data, and room for its own fixed concurrency.

    Its connections and shared-memory regions are sized by ``max_inflight``: a model held at
    c=16 in a sweep up to c=4 needs 16 of them, or its workers would wait for one another. A
    trace (its inputs, its sequences) is the first model's; the others keep rates of their own.
    """
    if not first:
        sweep_plan = replace(sweep_plan, trace=None)
    if part.input_data is not None:
        sweep_plan = replace(sweep_plan, data=replace(sweep_plan.data, source=part.input_data))
    if part.level is not None and sweep_plan.load_kind == "concurrency":
        sweep_plan = replace(sweep_plan, max_inflight=max(sweep_plan.max_inflight, int(part.level)))
    return sweep_plan


def _data_and_spec(sweep_plan: SweepPlan, model: ModelDescription, spec: LoadSpec) -> tuple[list[Any], LoadSpec]:
    """The data items, and the load spec with what the model and the trace add to it.

    A sequence model gets its sequences (made by perfprobe, or named by the trace); a trace's
    requests that carry their own inputs get items of their own.
    """
    from perfprobe.load import dataset

    trace = sweep_plan.trace
    if trace is not None and trace.sequence_ids:
        if not model.sequence_batching:
            raise UsageError(f"the trace names sequences (sequence_id), but {model.name} has no sequence batcher")
        items = dataset.load_items(model, sweep_plan.data)
        steps = trace.sequence_steps(len(items))
        items += dataset.trace_items(model, trace, sweep_plan.data)
        settings = sweep_plan.sequence_settings(model.string_correlation_ids, [tuple(range(len(items)))])
        return items, replace(spec, sequences=replace(settings, trace_steps=steps))
    if model.sequence_batching:
        if trace is not None and trace.own_items():
            raise UsageError(
                "a trace's own inputs drive stateless models, or sequences it names (sequence_id); "
                "for sequences perfprobe makes, give data streams with --input-data"
            )
        items, streams = dataset.load_sequence_data(model, sweep_plan.data)
        return items, replace(spec, sequences=sweep_plan.sequence_settings(model.string_correlation_ids, streams))
    items = dataset.load_items(model, sweep_plan.data)
    if trace is None:
        return items, spec
    send_items = trace.send_items(len(items))
    return items + dataset.trace_items(model, trace, sweep_plan.data), replace(spec, send_items=send_items)


@dataclass
class LoadSource:
    """Where each level's load comes from: this process, or a group of load processes."""

    make_load: Callable[[], WindowedLoad]
    worker_kind: str  # what ran (HTTP async runs on greenlets whatever was asked)
    notes: list[str]
    processes: int
    hosts: list[str]
    nodes: list[str]


def _load_source(
    sweep_plan: SweepPlan,
    loads: list[tuple[list[Any], LoadSpec]],
    control: InferenceClient,
    models: list[ModelDescription],
    observer: RunObserver,
) -> contextlib.AbstractContextManager[LoadSource]:
    """The plan's load (each model's, in the plan's order): in this process, or in load processes of its own."""
    if sweep_plan.spread:
        return _spread_loads(sweep_plan, loads, control, models, observer)
    if sweep_plan.several:
        return _several_loads(sweep_plan, loads, control, models, observer)
    return _one_load(loads[0], control, models[0], observer)


@contextlib.contextmanager
def _one_load(
    load: tuple[list[Any], LoadSpec], control: InferenceClient, model: ModelDescription, observer: RunObserver
) -> Iterator[LoadSource]:
    """One model's load, prepared in this process."""
    items, spec = load
    with prepared_load(spec, control, model, items, observer.note) as prepared:
        runtime = prepared.send_path.runtime
        notes = list(prepared.send_path.notes)
        if runtime.kind == "greenlet" and not patched():
            notes.append(
                "greenlet workers without gevent's patching: a blocking call between sends (a metrics scrape) "
                "holds every worker; call perfprobe.patch_for_greenlets() first thing"
            )
        yield LoadSource(prepared.make_load, runtime.kind, notes, 1, [], [])


@contextlib.contextmanager
def _spread_loads(
    sweep_plan: SweepPlan,
    loads: list[tuple[list[Any], LoadSpec]],
    control: InferenceClient,
    models: list[ModelDescription],
    observer: RunObserver,
) -> Iterator[LoadSource]:
    """``--processes`` / ``--cluster``: every model's load in each load process, windows merged by the group."""
    from perfprobe.spread.member import MemberModel
    from perfprobe.spread.start import spread_load

    levels = [part.level for part in sweep_plan.parts] if sweep_plan.several else [None]
    member_models = [
        MemberModel(described.name, spec, described, items, level)
        for (items, spec), described, level in zip(loads, models, levels, strict=True)
    ]
    with spread_load(
        member_models,
        control,
        observer.note,
        sweep_plan.processes,
        sweep_plan.cluster,
        sweep_plan.cluster_runtime_env,
    ) as group:
        yield LoadSource(group.make_load, group.worker_kind, group.notes, len(group.members), group.hosts, group.nodes)


@contextlib.contextmanager
def _several_loads(
    sweep_plan: SweepPlan,
    loads: list[tuple[list[Any], LoadSpec]],
    control: InferenceClient,
    models: list[ModelDescription],
    observer: RunObserver,
) -> Iterator[LoadSource]:
    """One prepared load per model in this process, combined so windows open and close together."""
    from perfprobe.load.combined import CombinedLoad, ModelLoad
    from perfprobe.load.open_files import ensure_open_files

    ensure_open_files(sum(spec.max_inflight for _, spec in loads))  # the models' loads share this process
    with contextlib.ExitStack() as stack:
        prepared = [
            stack.enter_context(prepared_load(spec, control, model, items, observer.note))
            for (items, spec), model in zip(loads, models, strict=True)
        ]

        def make_load() -> CombinedLoad:
            return CombinedLoad(
                [
                    ModelLoad(part.name, ready.make_load(), part.level)
                    for part, ready in zip(sweep_plan.parts, prepared, strict=True)
                ]
            )

        runtime = prepared[0].send_path.runtime
        notes = list(dict.fromkeys(note for ready in prepared for note in ready.send_path.notes))
        yield LoadSource(make_load, runtime.kind, notes, 1, [], [])


def _measure_level(sweep_plan: SweepPlan, sweeper: Sweeper, level: float) -> LevelResult:
    from perfprobe.load.schedule import ScheduleSpec

    if sweep_plan.load_kind == "concurrency":
        return sweeper.run_level("concurrency", level)
    if sweep_plan.trace is not None:
        schedule = ScheduleSpec(level, trace=sweep_plan.trace_times())
    elif sweep_plan.intervals_us:
        schedule = ScheduleSpec(level, intervals_us=tuple(sweep_plan.intervals_us))
    else:
        schedule = ScheduleSpec(level, sweep_plan.distribution, seed=sweep_plan.data.seed)
    return sweeper.run_level("rate", level, schedule, sweep_plan.max_inflight)


class SweepSession:
    """One sweep's measurement: its result, filled a level (or a level's next run) at a time.

    ``run`` is a sweep's whole course; a compare calls ``begin``, ``measure_first`` / ``measure_again``,
    ``save``, ``close`` and ``judge`` itself, its cells in turn.
    """

    def __init__(
        self,
        sweep_plan: SweepPlan,
        target: Target,
        models: list[ModelDescription],
        sweeper: Sweeper,
        source: LoadSource,
        observer: RunObserver,
        spec: LoadSpec,
        server: ServerFacts,
    ) -> None:
        self.plan = sweep_plan
        self.models = models
        self.sweeper = sweeper
        self.observer = observer
        self.result = _new_result(sweep_plan, target, models, source, spec, server)
        self._start = SweepStart(
            " + ".join(described.name for described in models),
            sweep_plan.protocol,
            target.url,
            sweep_plan.mode,
            source.worker_kind,
            sweep_plan.shared_memory,
            sweep_plan.load_kind,
            sweep_plan.describe_levels(),
            sweep_plan.data.batch_size,
            source.processes,
        )
        self._notes = source.notes

    def begin(self) -> SweepResult:
        """Say what is about to run; the result is filled as levels are measured."""
        for text in self._notes:
            self.observer.note(text)
        self.observer.started(self._start)
        return self.result

    def run(self) -> SweepResult:
        """Every level in the plan's search order, then each again for every further run; the result, or
        the exception that says what went wrong, carrying the levels measured."""
        self.begin()
        repeats = self.plan.repeats
        try:
            if repeats > 1:
                self.observer.section(f"run 1 of {repeats}")
            for level in search_levels(
                self.plan.levels, self._measure, self._latency_limit(), self.plan.binary_search, self.observer.decided
            ):
                self._keep(level, None)
            for number in range(2, repeats + 1):
                self.observer.section(f"run {number} of {repeats}")
                for position in range(len(self.result.runs)):
                    self.measure_again(position)
        except KeyboardInterrupt:
            self.result.interrupted = True
        except PerfprobeError as exc:  # the server went away, the load broke: the levels before it stay
            exc.result = self.result
            raise
        finally:
            self.save()
        self.close()
        self.judge()
        return self.result

    def measure_first(self, level: float) -> LevelResult:
        """A level's first run."""
        return self._keep(self._measure(level), None)

    def measure_again(self, position: int) -> LevelResult:
        """Another run of the level measured at ``position``."""
        return self._keep(self._measure(self.result.runs[position][0].level), position)

    def passed_limit(self, level: LevelResult) -> bool:
        """Whether a level's latency passed ``--latency-threshold`` (a sweep measures no level above it)."""
        limit = self._latency_limit()
        return limit is not None and limit.passed_by(level)

    def _measure(self, level: float) -> LevelResult:
        return _measure_level(self.plan, self.sweeper, level)

    def _keep(self, level: LevelResult, position: int | None) -> LevelResult:
        if position is None:
            self.result.add(level)
        else:
            self.result.add_repeat(position, level)
        _write(self.result, self.plan)
        self.observer.level_done(level)
        return level

    def _latency_limit(self) -> LatencyLimit | None:
        if self.plan.latency_threshold_ms is None:
            return None
        return LatencyLimit(self.plan.measure.stability.latency_key, self.plan.latency_threshold_ms * 1000)

    def save(self) -> None:
        """The document finished and written (on every way out, a failure's included)."""
        runfile.finish(self.result.document)
        _write(self.result, self.plan)

    def close(self) -> None:
        """After a run that ended well or was interrupted: the report (a chart's failure costs no result)."""
        _write_report(self.result, self.plan, self.observer)
        self.observer.finished(self.result)

    def judge(self) -> None:
        """Raise what the finished run's levels say went wrong: an interrupt, or levels that failed."""
        result = self.result
        if result.interrupted:
            raise RunInterrupted("interrupted: results measured so far are kept", result)
        if result.rows and all(row["Completed"] == 0 for row in result.rows):
            raise AllRequestsFailed("every request failed: " + (result.rows[-1]["Warnings"] or "see the JSON"), result)
        _fail_on_failed_levels(result, self.sweeper, self.models)


def _new_result(
    sweep_plan: SweepPlan,
    target: Target,
    models: list[ModelDescription],
    source: LoadSource,
    spec: LoadSpec,
    server: ServerFacts,
) -> SweepResult:
    """The sweep's result before its first level: what ran, where, with which settings."""
    model = models[0]
    model_facts = _model_facts(model)
    if sweep_plan.several:
        model_facts["together_with"] = [_model_facts(other) for other in models[1:]]
    # recorded as sent: the first request's check may have turned the tensors to JSON
    settings = replace(sweep_plan, json_inputs=spec.json_inputs, json_outputs=spec.json_outputs).recorded(target)
    if spec.sequences is not None:
        settings["sequences"] = sweep_plan.recorded_sequences(spec.sequences)
    settings["checked_requests"] = server.checked_requests
    settings["worker_kind"] = source.worker_kind  # what ran (HTTP async runs on greenlets whatever was asked)
    settings["processes"] = source.processes
    if source.hosts:
        settings["hosts"] = sorted(set(source.hosts))
    if source.nodes:
        settings["ray_nodes"] = source.nodes  # per load process
    return SweepResult(
        model=model,
        load_kind=sweep_plan.load_kind,
        batch_size=sweep_plan.data.batch_size,
        document=runfile.new_document(settings, server.abilities.as_dict(), model_facts),
        output_dir=sweep_plan.output_dir,
        parts=sweep_plan.parts if sweep_plan.several else [],
        part_composing={m.name: [step.model_name for step in m.ensemble_steps] for m in models},
    )


def _fail_on_failed_levels(result: SweepResult, sweeper: Sweeper, models: list[ModelDescription]) -> None:
    """Levels where every request failed (the model went away) or nothing succeeded for a window (the
    server froze): exit 4, since their figures are wrong or missing.

    Every level stays in the results; the error says which failed, why, and whether the model is
    still there.
    """
    merged = [(level, level.merged()) for level in result.measured]
    failed = [(level, stats) for level, stats in merged if stats.error_count and not stats.completed]
    stalled = [(level, merge_stats(silent)) for level in result.measured if (silent := level.silent_windows())]
    if not failed and not stalled:
        return
    said = []
    if failed:
        said.append(f"every request failed at {_levels_why(failed)}")
    if stalled:
        unanswered = all(set(stats.errors) <= {TIMEOUT} for _, stats in stalled)  # no refusal: no answer at all
        said.append(
            f"no request succeeded for a whole window at {_levels_why(stalled)}"
            + (": the server stalled" if unanswered else "")
        )
    states = dict.fromkeys(_model_state(sweeper.stats_client, model.name) for model in models)
    now = "".join(f"; {state}" for state in states if state)
    raise AllRequestsFailed(f"{'; '.join(said)}{now}; all levels are in the results", result)


def _levels_why(levels: list[tuple[LevelResult, WindowStats]]) -> str:
    """The levels named, with the last one's error codes and most frequent reason."""
    named = ", ".join(dict.fromkeys(level_label(level.load_kind, level.level) for level, _ in levels))
    last = levels[-1][1]
    if not last.errors:
        return f"{named} (no answer and no error: longer than a window)"
    reasons = last.top_reasons()
    return f"{named} ({error_codes(last.errors)}" + (f"; most frequent reason: {reasons[0][1]})" if reasons else ")")


def _model_state(control: InferenceClient, name: str) -> str:
    """What became of the model after its levels failed ("" when it is still ready)."""
    try:
        ready = control.is_model_ready(name)
    except Exception:  # no answer (a frozen or stopped server): whether the model is there cannot be told
        return "the server does not answer"
    return "" if ready else f"{name} is no longer ready on the server"


def _model_facts(model: ModelDescription) -> dict[str, Any]:
    return {
        "name": model.name,
        "config_digest": model.config_digest,
        "max_batch_size": model.max_batch_size,
        "decoupled": model.decoupled,
        "sequence_batching": model.sequence_batching,
        "composing_models": [step.model_name for step in model.ensemble_steps],
    }


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
