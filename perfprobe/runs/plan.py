"""A sweep's options validated into a plan: every mistake one ``UsageError`` naming the option."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from perfprobe.client.tls import TlsFiles, tls_url
from perfprobe.data import synthetic
from perfprobe.data.prompts import DEFAULT_OUTPUT_TOKENS, DEFAULT_PROMPT_TOKENS, PromptPlan, parse_lengths
from perfprobe.errors import UsageError
from perfprobe.load.dataset import DataOptions
from perfprobe.load.engine import EngineSettings
from perfprobe.load.prepare import LoadSpec
from perfprobe.load.ranges import parse_range
from perfprobe.load.schedule import TraceTimes, read_intervals
from perfprobe.load.sequences import SequenceSettings
from perfprobe.load.sweeper import MeasureSettings
from perfprobe.load.trace import RequestTrace, read_trace
from perfprobe.measure.goodput import parse_goodput
from perfprobe.measure.stability import StabilityRule
from perfprobe.runs.models import ModelPart, model_names, parse_parts
from perfprobe.runs.options import (
    SweepOptions,
    check_address,
    concurrency_text,
    most_in_flight,
    parse_headers,
    parse_request_parameters,
    process_count,
    tls_files,
    worker_kind,
)
from perfprobe.runs.target import Target
from perfprobe.spread.runtime_env import parse_runtime_env
from perfprobe.transport import transport_for, transports

STOP_GRACE_S = 5.0  # past the request timeout, for workers to notice the stop and close their streams
PERCENTILES = (50, 90, 95, 99, 99.9)


@dataclass
class SweepPlan:
    """A validated sweep: what to load, how, how to measure it and where results go."""

    model: str  # the first model (the only one, unless parts names several)
    parts: list[ModelPart]  # every model loaded, the first included
    protocol: str
    url: str
    serve: bool
    serve_repositories: list[str]
    headers: dict[str, str]
    load_kind: str  # "concurrency" or "rate"
    level_spec: str  # the levels as given: "1:8:x2", "100:400:100", or the intervals file
    levels: list[float]
    intervals_us: list[int] | None
    distribution: str
    max_inflight: int  # requests in flight at most: the concurrency's top, or --max-inflight open loop
    mode: str
    worker_kind: str  # "greenlet" or "thread"
    grpc_transport: str  # "h2" or "grpcio" (gRPC on thread and greenlet workers)
    request_timeout_s: float
    decode_outputs: bool
    shared_memory: str
    output_shm_size: int | None
    cuda_device: int
    latency_threshold_ms: float | None
    binary_search: bool
    data: DataOptions
    measure: MeasureSettings
    engine: EngineSettings
    metrics_url: str | None
    csv_file: str | None
    output_dir: Path | None
    report: bool = True
    latency_budget: str | None = None
    input_shapes: list[str] = field(default_factory=list)
    processes: int | None = 1  # load processes; None: one per usable core (or cluster CPU)
    cluster: str | None = None
    cluster_runtime_env: dict[str, Any] | None = None
    sequences: SequenceSettings = field(default_factory=SequenceSettings)  # used when the model has a sequence batcher
    trace: RequestTrace | None = None  # --request-trace: open loop at a recorded trace's times
    trace_speedup: float = 1.0
    trace_loop: bool = False
    sequence_length_given: bool = False
    tls: TlsFiles | None = None  # --ssl-* files (TLS on); without them the URL's scheme decides
    compression: str | None = None  # gzip or deflate
    request_parameters: dict[str, bool | int | float | str] = field(default_factory=dict)  # on every request
    json_inputs: bool = False  # HTTP: --input-tensor-format json
    json_outputs: bool = False  # HTTP: --output-tensor-format json
    options: SweepOptions = field(default_factory=SweepOptions)  # as given and checked (recorded by declaration)
    endpoint: str = "infer"  # infer, or the generate extension's generate / generate_stream
    tokenizer: str | None = None  # a local tokenizer.json: counts generated text's tokens and sizes prompts

    @property
    def repeats(self) -> int:
        """How many times each level is measured (``--repeats``)."""
        return self.options.repeats

    @property
    def several(self) -> bool:
        """Whether several models are loaded at once (``-m A -m B``)."""
        return len(self.parts) > 1

    @property
    def spread(self) -> bool:
        """Whether the load runs in load processes of its own rather than in this one."""
        return self.processes != 1 or self.cluster is not None

    def load_spec(self, target: Target) -> LoadSpec:
        """How a process sends this plan's load to ``target`` (all of it; ``perfprobe.spread`` splits it)."""
        return LoadSpec(
            protocol=target.protocol,
            url=target.url,
            headers=self.headers,
            tls=self.tls,
            compression=self.compression,
            parameters=self.request_parameters,
            json_inputs=self.json_inputs,
            json_outputs=self.json_outputs,
            request_timeout_s=self.request_timeout_s,
            mode=self.mode,
            worker_kind=self.worker_kind,
            grpc_transport=self.grpc_transport,
            decode_outputs=self.decode_outputs,
            shared_memory=self.shared_memory,
            output_shm_size=self.output_shm_size,
            cuda_device=self.cuda_device,
            batch_size=self.data.batch_size,
            max_inflight=self.max_inflight,
            engine=self.engine,
            endpoint=self.endpoint,
            tokenizer=self.tokenizer,
        )

    def token_count(self) -> str:
        """How a generated answer's tokens are counted, as results.json and the notes say it."""
        if self.tokenizer and (self.endpoint != "infer" or self.mode == "stream"):
            return f"by the tokenizer {self.tokenizer}"
        if self.tokenizer:
            return "as one per streamed response with output (--tokenizer reads generate answers and gRPC streams)"
        return "as one per streamed response with output (give --tokenizer to count the text)"

    def _grpc_transport(self) -> str | None:
        """What carries gRPC (None where the choice does not apply: HTTP, asyncio workers)."""
        if not transport_for(self.protocol, self.endpoint).connections or self.worker_kind == "asyncio":
            return None
        return self.grpc_transport

    def _tensor_format(self) -> dict[str, str] | None:
        """HTTP's tensor formats, input and output (None on gRPC, whose tensors are always binary)."""
        if not transport_for(self.protocol, self.endpoint).json_tensors:
            return None
        return {
            side: "json" if own else "binary"
            for side, own in (("input", self.json_inputs), ("output", self.json_outputs))
        }

    def _uses_tls(self, url: str) -> bool:
        """Whether the load talks TLS: files given, or a URL whose scheme asks for it."""
        return self.tls is not None or tls_url(url)

    def describe_levels(self) -> str:
        if self.trace is not None:
            speed = f", {self.trace_speedup:g}x speed" if self.trace_speedup != 1 else ""
            again = ", looped" if self.trace_loop else ""
            extent = f"{len(self.trace)} requests over {self.trace.span_s():.3g} s"
            return f"from trace {self.trace.path} ({extent}{speed}{again})"
        if self.intervals_us:
            return f"from intervals file ({len(self.intervals_us)} gaps)"
        return ", ".join(f"{level:g}" for level in self.levels)

    def recorded(self, target: Target) -> dict[str, Any]:
        """The settings results.json keeps, under names of their own (not the options').

        The options kept as given are those whose declarations name a ``records`` key; what the run
        worked out (levels, worker kind, TLS) follows. Where the load went comes from ``target``: a
        compare's cells run on the compare's server.
        """
        return {
            **self.options.recorded(),
            "model": self.model,
            "models": [part.recorded() for part in self.parts] if self.several else None,
            "url": None if target.embedded else target.url,
            "embedded_server": target.embedded,
            "worker_kind": self.worker_kind,
            "grpc_transport": self._grpc_transport(),
            "tls": self._uses_tls(target.url),
            "tensor_format": self._tensor_format(),
            "request_parameters": self.request_parameters or None,
            "load_kind": self.load_kind,
            "level_spec": self.level_spec,
            "levels": self.levels,
            "intervals_count": len(self.intervals_us) if self.intervals_us else None,
            "trace": self._recorded_trace(),
            "distribution": self.distribution if self.load_kind == "rate" else None,
            "max_inflight": self.max_inflight,
            "shapes": self.input_shapes,
            "input_data": self.data.source,
            "window_mode": "count" if self.measure.count_mode else "time",
            "stability_latency": self.measure.stability.latency_key,
            "drain": self.measure.drain,
            "processes": self.processes,
            "cluster": self.cluster,
            "token_count": self.token_count(),
            "warmup_s": self.measure.warmup_s,
        }

    def trace_times(self) -> TraceTimes | None:
        return self.trace.times(self.trace_speedup, self.trace_loop) if self.trace is not None else None

    def _recorded_trace(self) -> dict[str, Any] | None:
        if self.trace is None:
            return None
        return {
            "file": self.trace.path,
            "requests": len(self.trace),
            "span_s": self.trace.span_s(),
            "speedup": self.trace_speedup,
            "loop": self.trace_loop,
        }

    def sequence_settings(self, string_ids: bool, streams: list[tuple[int, ...]]) -> SequenceSettings:
        """The sequences of a stateful model: this plan's options with the model's id kind and data streams.

        Ids are strings when the model declares them so (a CORRID control of TYPE_STRING) or when asked.
        Without ``--sequence-length``, a JSON data file sets each sequence's length (its stream's),
        as perf_analyzer does.
        """
        from_data = not self.sequence_length_given and Path(self.data.source).is_file()
        string_ids = string_ids or self.sequences.string_ids
        return replace(self.sequences, string_ids=string_ids, streams=tuple(streams), length_from_data=from_data)

    def recorded_sequences(self, settings: SequenceSettings) -> dict[str, Any]:
        return {
            "length": "from data" if settings.length_from_data else settings.length,
            "length_variation_pct": None if settings.length_from_data else settings.length_variation_pct,
            "id_range": [settings.id_start, settings.id_end],
            "string_ids": settings.string_ids,
            "serial": settings.serial,
            "live_open_loop": settings.live if self.load_kind == "rate" else None,
            "data_streams": len(settings.streams),
        }


def default_output_dir(model: str | list[str], label: str = "") -> Path:
    """``reports/<timestamp>-[label-]<model>``: where the command line writes a run by default."""
    if not isinstance(model, str):  # several models: A+B, without their @settings
        model = "+".join(name.partition("@")[0] for name in model)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"{stamp}-{label + '-' if label else ''}{model}"


def _levels(
    options: SweepOptions, intervals: list[int] | None, trace: RequestTrace | None
) -> tuple[str, str, list[float]]:
    """The load kind, the levels as given, and the levels."""
    if trace is not None:
        return "rate", str(options.request_trace), [trace.times(options.trace_speedup, options.trace_loop).rate()]
    if options.request_rate is not None and options.request_rate != "":
        text = str(options.request_rate)
        return "rate", text, parse_range(text, "--request-rate", integer=False, minimum=1e-6)
    if intervals:
        return "rate", str(options.request_intervals), [1e6 * len(intervals) / sum(intervals)]
    text = concurrency_text(options)
    return "concurrency", text, parse_range(text, "--concurrency", integer=True, minimum=1)


def _stability_latency(options: SweepOptions) -> str:
    """The latency a level's windows must agree on: ``--percentile``, else the percentile ``--latency-budget``
    judges the run by (its verdict is only as steady as that figure), else the mean. A bad budget stops
    the run here, before any load."""
    budget = None
    if options.latency_budget:
        from perfprobe.report.level_metrics import gated_percentile
        from perfprobe.report.summary import parse_budget

        budget = parse_budget(options.latency_budget)
    if options.percentile is not None:
        if options.percentile not in PERCENTILES:
            raise UsageError("--percentile must be one of 50, 90, 95, 99, 99.9")
        return f"p{options.percentile:g}"
    judged = gated_percentile(budget.metric) if budget is not None else None
    return f"p{judged:g}" if judged in PERCENTILES else "mean"


def _check_numbers(options: SweepOptions) -> None:
    """Every number given is a finite one (``nan`` and ``inf`` parse as floats, and silently pass comparisons)."""
    for name, declared in SweepOptions.declared().items():
        value = getattr(options, name)
        if declared.kind in (int, float) and value is not None:
            try:
                finite = math.isfinite(value)
            except TypeError:
                raise UsageError(f"--{name.replace('_', '-')} must be a number, not {value!r}") from None
            if not finite:
                raise UsageError(f"--{name.replace('_', '-')} must be a finite number, not {value!r}")
    if options.late_threshold < 0:
        raise UsageError("--late-threshold cannot be negative")
    if not 0 <= options.sequence_length_variation <= 100:
        raise UsageError("--sequence-length-variation must be between 0 and 100 (percent)")


def _warmup_s(options: SweepOptions) -> float:
    """The warm-up asked for, or by default a fifth of a time window (at most 1 s).

    A level's first requests pay for cold caches, fresh connections and lazily built server state;
    without a warm-up they land in the first window, and a level that stabilises at once reports them.
    """
    if options.warmup_seconds is not None:
        return options.warmup_seconds
    if options.measurement_mode == "count_windows" or options.warmup_requests or options.request_trace:
        return 0.0  # a trace is replayed from its first request: a warm-up would send part of it unmeasured
    return min(options.measurement_interval / 5000, 1.0)


def _check_counts(options: SweepOptions) -> None:
    for name in (
        "batch_size",
        "measurement_interval",
        "measurement_request_count",
        "stability_windows",
        "max_trials",
        "repeats",
        "string_length",
        "data_items",
        "prompts",
    ):
        if getattr(options, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if options.history and not options.output_dir:
        raise UsageError("--history keeps a run's saved results: give --output-dir too")
    if options.warmup_requests < 0 or (options.warmup_seconds or 0) < 0:
        raise UsageError("--warmup-requests and --warmup-seconds cannot be negative")
    if options.max_inflight is not None and options.max_inflight < 1:
        raise UsageError("--max-inflight must be at least 1")
    if not 0 <= options.send_spin <= 1e6:
        raise UsageError("--send-spin must be between 0 and 1000000 µs")
    if not options.request_timeout > 0:
        raise UsageError("--request-timeout must be more than 0 seconds")
    if options.stability_percentage <= 0:
        raise UsageError("--stability-percentage must be positive")


def _check_tensor_formats(options: SweepOptions) -> None:
    """JSON tensors exist only in HTTP requests and answers, and only for tensors the request carries."""
    for side in ("input", "output"):
        if getattr(options, f"{side}_tensor_format") != "json":
            continue
        transport = transport_for(options.protocol, options.endpoint)
        if not transport.json_tensors:
            able = [other for other in transports() if other.json_tensors]
            raise UsageError(
                f"--{side}-tensor-format json is {' or '.join(other.display_name for other in able)}'s: "
                f"{transport.display_name} carries tensors as bytes; add -i {able[0].protocol}"
            )
        if options.shared_memory != "none":
            raise UsageError(
                f"--{side}-tensor-format json puts tensors in the request's JSON; with --shared-memory "
                f"{options.shared_memory} they are in shared memory instead"
            )


def _check_choices(options: SweepOptions) -> None:
    """Every value with declared choices is one of them (the command line checked; Python and YAML may not have)."""
    for name, declared in SweepOptions.declared().items():
        allowed, value = declared.allowed(), getattr(options, name)
        if allowed is not None and value is not None and value not in allowed:
            raise UsageError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}")
    given = [
        options.concurrency not in (None, ""),
        options.request_rate not in (None, ""),
        bool(options.request_intervals),
        bool(options.request_trace),
    ]
    if sum(given) > 1:
        raise UsageError("give one of --concurrency, --request-rate, --request-intervals and --request-trace")
    if not options.trace_speedup > 0:
        raise UsageError("--trace-speedup must be more than 0")


def _check_data_source(source: str, named: str) -> None:
    """Generated data (zero, random) or a file or folder that exists; ``named`` says where it was given."""
    if source not in synthetic.DATA_KINDS and not Path(source).exists():
        raise UsageError(f"{named}: not zero, random, or an existing file or folder")


def _check_several(options: SweepOptions, parts: list[ModelPart]) -> None:
    """What several models at once cannot be combined with (yet), each refused by name."""
    for part in parts:
        if part.input_data:
            _check_data_source(part.input_data, f"-m {part.name}@data={part.input_data}")
    if len(parts) == 1:
        return
    if parts[0].level is not None:
        raise UsageError(f"-m {parts[0].name}: the first model follows the sweep's levels (give others fixed ones)")
    unpaced = [part.name for part in parts[1:] if part.level is None]
    if options.request_trace and unpaced:  # a trace's times and inputs are one model's
        raise UsageError(
            f"with --request-trace the first model follows the trace; give the others a rate of their own "
            f"(-m {unpaced[0]}@rate=R)"
        )


def plan(options: SweepOptions) -> SweepPlan:
    """Validate the options; every mistake is one UsageError naming the option."""
    names = model_names(options.model)
    if not names:
        raise UsageError("the following arguments are required: -m/--model")
    _check_choices(options)
    transport_for(options.protocol, options.endpoint).check_mode(options.mode)
    _check_generate(options)
    intervals = read_intervals(options.request_intervals) if options.request_intervals else None
    trace = read_trace(options.request_trace, names[0].partition("@")[0]) if options.request_trace else None
    if trace is not None and trace.sequence_ids and (process_count(options) != 1 or options.cluster):
        raise UsageError(
            "a trace that names its sequences runs in one load process: each sequence's steps stay in order"
        )
    load_kind, level_spec, levels = _levels(options, intervals, trace)
    parts = parse_parts(names, load_kind)
    _check_several(options, parts)
    check_address(options.url)
    tls = tls_files(options.ssl_ca_file, options.ssl_cert_file, options.ssl_key_file)
    if tls is not None and options.serve:
        raise UsageError("--serve starts a server without TLS: drop the --ssl-* files, or give -u for a TLS server")
    if options.binary_search and options.latency_threshold is None:
        raise UsageError("--binary-search needs --latency-threshold MS")
    _check_numbers(options)
    _check_counts(options)
    _check_tensor_formats(options)
    latency_key = _stability_latency(options)
    _check_data_source(options.input_data, f"--input-data {options.input_data!r}")
    closed = load_kind == "concurrency"
    max_inflight = most_in_flight(options)
    from perfprobe.client.factory import default_url

    return SweepPlan(
        model=parts[0].name,
        parts=parts,
        protocol=options.protocol,
        url=options.url or default_url(options.protocol),
        serve=options.serve,
        serve_repositories=list(options.serve_models),
        headers=parse_headers(options.header),
        tls=tls,
        compression=options.compression,
        request_parameters=parse_request_parameters(options.request_parameter),
        json_inputs=options.input_tensor_format == "json",
        json_outputs=options.output_tensor_format == "json",
        load_kind=load_kind,
        level_spec=level_spec,
        levels=levels,
        intervals_us=intervals,
        distribution=options.distribution,
        max_inflight=max_inflight,
        mode=options.mode,
        worker_kind=worker_kind(options),
        grpc_transport=options.grpc_transport,
        request_timeout_s=options.request_timeout,
        decode_outputs=options.decode_outputs,
        shared_memory=options.shared_memory,
        output_shm_size=options.output_shared_memory_size,
        cuda_device=options.cuda_device,
        latency_threshold_ms=options.latency_threshold,
        binary_search=options.binary_search,
        data=DataOptions(
            source=options.input_data,
            batch_size=options.batch_size,
            shapes=synthetic.parse_shape_option(options.shape),
            datatypes=synthetic.parse_shape_datatypes(options.shape),
            string_length=options.string_length,
            items=options.data_items,
            prompts=_prompts(options),
        ),
        measure=MeasureSettings(
            window_ms=options.measurement_interval,
            count_mode=options.measurement_mode == "count_windows",
            window_requests=options.measurement_request_count,
            stability=StabilityRule(options.stability_windows, options.stability_percentage / 100, latency_key),
            max_trials=options.max_trials,
            warmup_requests=options.warmup_requests,
            warmup_s=_warmup_s(options),
            drain=not options.no_drain,
            batch_size=options.batch_size,
            finish_timeout_s=options.request_timeout + STOP_GRACE_S,
            goodput=options.goodput or "",
        ),
        engine=EngineSettings(
            late_threshold_ns=int(options.late_threshold * 1e6),
            spin_ns=int(options.send_spin * 1e3),
            stop_timeout_s=options.request_timeout + STOP_GRACE_S,
            record_requests=options.export_requests,
            goodput=parse_goodput(str(options.goodput)) if options.goodput else None,
        ),
        metrics_url=options.metrics_url,
        csv_file=options.csv,
        output_dir=Path(options.output_dir) if options.output_dir else None,
        report=not options.no_report,
        latency_budget=options.latency_budget,
        input_shapes=list(options.shape),
        processes=process_count(options),
        cluster=options.cluster or None,
        cluster_runtime_env=parse_runtime_env(options.cluster_runtime_env),
        sequences=_sequences(options, max_inflight if closed else options.num_of_sequences),
        sequence_length_given=options.sequence_length is not None,
        trace=trace,
        trace_speedup=options.trace_speedup,
        trace_loop=options.trace_loop,
        options=options,
        endpoint=options.endpoint,
        tokenizer=str(options.tokenizer) if options.tokenizer else None,
    )


def _check_generate(options: SweepOptions) -> None:
    """What the generate endpoints cannot be combined with, and a tokenizer that cannot be read."""
    if options.endpoint != "infer":
        if options.shared_memory != "none":
            raise UsageError(f"--endpoint {options.endpoint} sends JSON: tensors cannot travel in shared memory")
        if options.compression:
            raise UsageError(f"--endpoint {options.endpoint}: --compression is for infer requests")
    if options.tokenizer:
        from perfprobe.client.tokens import load_tokenizer

        load_tokenizer(str(options.tokenizer))  # a missing or unreadable file stops the run before any load


def _prompts(options: SweepOptions) -> PromptPlan:
    """The synthetic prompts a generative model gets (used when the model takes text_input, or when asked)."""
    return PromptPlan(
        parse_lengths(options.prompt_tokens or DEFAULT_PROMPT_TOKENS, "--prompt-tokens"),
        parse_lengths(options.output_tokens or DEFAULT_OUTPUT_TOKENS, "--output-tokens"),
        count=options.prompts,
        tokenizer=str(options.tokenizer) if options.tokenizer else None,
        asked=bool(options.prompt_tokens or options.output_tokens),
    )


def _sequences(options: SweepOptions, live: int) -> SequenceSettings:
    """The sequence options (used if the model turns out to have a sequence batcher), checked."""
    length = options.sequence_length if options.sequence_length is not None else SequenceSettings.length
    if length < 1:
        raise UsageError("--sequence-length must be at least 1")
    if not 0 <= options.sequence_length_variation <= 100:
        raise UsageError("--sequence-length-variation must be a percentage from 0 to 100")
    if options.num_of_sequences < 1:
        raise UsageError("--num-of-sequences must be at least 1")
    start, end = _id_range(options.sequence_id_range)
    settings = SequenceSettings(
        length=length,
        length_variation_pct=options.sequence_length_variation,
        id_start=start,
        id_end=end,
        serial=options.serial_sequences,
        live=options.num_of_sequences,
        string_ids=options.string_sequence_ids,
    )
    settings.check_ids(live)
    return settings


def _id_range(text: str | None) -> tuple[int, int | None]:
    """``--sequence-id-range START[:END]`` (END excluded), positive whole numbers."""
    if text in (None, ""):
        return SequenceSettings.id_start, None
    first, sep, last = str(text).partition(":")
    try:
        start = int(first)
        end = int(last) if sep and last != "" else None
    except ValueError:
        raise UsageError(f"--sequence-id-range {text!r}: expected START[:END] in whole numbers") from None
    if start < 1 or (end is not None and end <= start):
        raise UsageError(f"--sequence-id-range {text!r}: ids start at 1 or more, and END (excluded) must exceed START")
    return start, end
