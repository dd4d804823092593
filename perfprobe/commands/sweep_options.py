"""The sweep's options: flags, YAML config files, and their validation into one plan."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfprobe.commands.common import add_shared_memory_options, recorded_arguments
from perfprobe.data import synthetic
from perfprobe.errors import UsageError
from perfprobe.load.dataset import DataOptions
from perfprobe.load.engine import EngineSettings
from perfprobe.load.ranges import parse_range
from perfprobe.load.runtime import WORKER_KINDS
from perfprobe.load.schedule import DISTRIBUTIONS, read_intervals
from perfprobe.load.sweeper import MeasureSettings
from perfprobe.load.transport import DEFAULT_WORKERS, MODES
from perfprobe.measure.stability import StabilityRule

DEFAULT_MAX_INFLIGHT = 64
STOP_GRACE_S = 5.0  # past the request timeout, for workers to notice the stop and close their streams


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model", help="model name (required, here or in --config)")
    parser.add_argument("--config", help="YAML file whose keys are this command's long options; flags override it")
    load = parser.add_argument_group("load")
    levels = load.add_mutually_exclusive_group()
    levels.add_argument("--concurrency", help="closed loop: START[:END[:STEP]]; STEP may be xN (e.g. 1:32:x2)")
    levels.add_argument("--request-rate", help="open loop: requests/s START[:END[:STEP]]")
    levels.add_argument("--request-intervals", metavar="FILE", help="open loop: microseconds between sends, per line")
    load.add_argument("--distribution", choices=DISTRIBUTIONS, default="constant", help="request-rate arrivals")
    load.add_argument(
        "--max-inflight", type=int, help="open loop: workers, i.e. requests in flight at most (default 64)"
    )
    load.add_argument("--latency-threshold", type=float, metavar="MS", help="stop once latency passes this")
    load.add_argument("--binary-search", action="store_true", help="find the highest level under the threshold")
    load.add_argument("--mode", choices=MODES, default="sync", help="sync, async or stream (gRPC)")
    load.add_argument(
        "--workers", choices=WORKER_KINDS, help="worker kind (default: greenlet for HTTP, thread for gRPC)"
    )
    load.add_argument("--request-timeout", type=float, default=30.0, metavar="S", help="per-request timeout")
    load.add_argument(
        "--decode-outputs",
        action="store_true",
        help="decode every response's outputs (timed as Client Recv); off, only the status is checked",
    )
    data = parser.add_argument_group("data")
    data.add_argument("-b", "--batch-size", type=int, default=1)
    data.add_argument("--shape", action="append", default=[], metavar="NAME:d1,d2")
    data.add_argument("--input-data", default="random", help="zero, random, a JSON data file or a folder")
    data.add_argument("--string-length", type=int, default=16, help="BYTES element length for generated data")
    data.add_argument("--data-items", type=int, default=1, help="distinct generated data items")
    add_shared_memory_options(data, None)
    measure = parser.add_argument_group("measurement")
    measure.add_argument("--measurement-interval", type=int, default=5000, metavar="MS", help="window length")
    measure.add_argument("--measurement-mode", choices=("time_windows", "count_windows"), default="time_windows")
    measure.add_argument("--measurement-request-count", type=int, default=50, help="requests per count window")
    measure.add_argument("--stability-percentage", type=float, default=10.0)
    measure.add_argument("--stability-windows", type=int, default=3)
    measure.add_argument("--max-trials", type=int, default=10)
    measure.add_argument("--percentile", type=float, help="latency percentile that must be stable (default: mean)")
    measure.add_argument("--warmup-requests", type=int, default=0)
    measure.add_argument("--warmup-seconds", type=float, default=0.0)
    measure.add_argument(
        "--no-drain",
        action="store_true",
        help="closed loop: do not pause at window boundaries (server/client counts may differ)",
    )
    measure.add_argument("--metrics-url", help="Prometheus endpoint (default: port 8002 on the server's host)")
    measure.add_argument(
        "--late-threshold",
        type=float,
        default=1.0,
        metavar="MS",
        help="open loop: a send this far behind schedule counts as late",
    )
    out = parser.add_argument_group("output")
    out.add_argument("-f", "--csv", help="also write the CSV here")
    out.add_argument("--output-dir", help="default reports/<timestamp>-<model>/")
    out.add_argument(
        "--no-report",
        action="store_true",
        help="skip the charts, summary.md and report.html written at the end (perfprobe report makes them later)",
    )
    out.add_argument(
        "--latency-budget",
        metavar="[METRIC=]DURATION",
        help="the report names the highest load within this latency, e.g. 5ms or p95=2ms (default metric p99)",
    )
    parser.add_argument(
        "--serve-models",
        action="append",
        default=[],
        metavar="DIR",
        help="with --serve: extra model repositories to serve",
    )


@dataclass
class SweepPlan:
    model: str
    protocol: str
    url: str
    serve: bool
    serve_repositories: list[str]
    load_kind: str
    levels: list[float]
    intervals_us: list[int] | None
    distribution: str
    max_workers: int
    mode: str
    workers: str
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
    output_dir_option: str | None
    report: bool = True
    latency_budget: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    _out: Path | None = None

    def output_dir(self, model_name: str) -> Path:
        if self._out is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            self._out = Path(self.output_dir_option or Path("reports") / f"{stamp}-{model_name}")
        return self._out

    def describe_levels(self) -> str:
        if self.intervals_us:
            return f"from intervals file ({len(self.intervals_us)} gaps)"
        return ", ".join(f"{level:g}" for level in self.levels)


def apply_config(top: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None) -> argparse.Namespace:
    """Re-parse with a YAML file's values as defaults, so flags given on the line still win."""
    if not getattr(args, "config", None):
        return args
    parser = args.subparser
    import yaml

    try:
        loaded = yaml.safe_load(Path(args.config).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read config {args.config}: {exc}") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"config {args.config} must be a mapping of option names to values")
    known = {action.dest for action in parser._actions}
    defaults = {}
    for key, value in loaded.items():
        dest = str(key).replace("-", "_")
        if dest not in known or dest in ("config", "help"):
            raise UsageError(f"config {args.config}: unknown option {key!r}")
        defaults[dest] = value
    parser.set_defaults(**defaults)
    return top.parse_args(argv)


def plan_from_args(args: argparse.Namespace) -> SweepPlan:
    """Validate the options; every mistake is one UsageError naming the option."""
    if not args.model:
        raise UsageError("the following arguments are required: -m/--model")
    if args.protocol == "http" and args.mode == "stream":
        raise UsageError("--mode stream needs gRPC (bidirectional streams): add -i grpc")
    intervals = read_intervals(args.request_intervals) if args.request_intervals else None
    if args.request_rate:
        load_kind, levels = "rate", parse_range(args.request_rate, "--request-rate", integer=False, minimum=1e-6)
    elif intervals:
        load_kind, levels = "rate", [1e6 * len(intervals) / sum(intervals)]
    else:
        load_kind = "concurrency"
        levels = parse_range(args.concurrency or "1", "--concurrency", integer=True, minimum=1)
    if args.latency_budget:
        from perfprobe.commands.report import parse_budget

        parse_budget(args.latency_budget)  # a bad budget stops the run before any load
    if args.binary_search and args.latency_threshold is None:
        raise UsageError("--binary-search needs --latency-threshold MS")
    for name in (
        "batch_size",
        "measurement_interval",
        "measurement_request_count",
        "stability_windows",
        "max_trials",
        "string_length",
        "data_items",
    ):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup_requests < 0 or args.warmup_seconds < 0:
        raise UsageError("--warmup-requests and --warmup-seconds cannot be negative")
    if args.max_inflight is not None and args.max_inflight < 1:
        raise UsageError("--max-inflight must be at least 1")
    if not args.request_timeout > 0:
        raise UsageError("--request-timeout must be more than 0 seconds")
    if args.stability_percentage <= 0:
        raise UsageError("--stability-percentage must be positive")
    latency_key = "mean"
    if args.percentile is not None:
        if args.percentile not in (50, 90, 95, 99, 99.9):
            raise UsageError("--percentile must be one of 50, 90, 95, 99, 99.9")
        latency_key = f"p{args.percentile:g}"
    if args.input_data not in synthetic.DATA_KINDS and not Path(args.input_data).exists():
        raise UsageError(f"--input-data {args.input_data!r}: not zero, random, or an existing file or folder")
    max_workers = int(max(levels)) if load_kind == "concurrency" else (args.max_inflight or DEFAULT_MAX_INFLIGHT)
    from perfprobe.client.factory import DEFAULT_URLS

    return SweepPlan(
        model=args.model,
        protocol=args.protocol,
        url=args.url or DEFAULT_URLS[args.protocol],
        serve=args.serve,
        serve_repositories=list(args.serve_models),
        load_kind=load_kind,
        levels=levels,
        intervals_us=intervals,
        distribution=args.distribution,
        max_workers=max_workers,
        mode=args.mode,
        workers=args.workers or DEFAULT_WORKERS[args.protocol],
        request_timeout_s=args.request_timeout,
        decode_outputs=args.decode_outputs,
        shared_memory=args.shared_memory,
        output_shm_size=args.output_shared_memory_size,
        cuda_device=args.cuda_device,
        latency_threshold_ms=args.latency_threshold,
        binary_search=args.binary_search,
        data=DataOptions(
            source=args.input_data,
            batch_size=args.batch_size,
            shapes=synthetic.parse_shape_option(args.shape),
            string_length=args.string_length,
            items=args.data_items,
        ),
        measure=MeasureSettings(
            window_ms=args.measurement_interval,
            count_mode=args.measurement_mode == "count_windows",
            window_requests=args.measurement_request_count,
            stability=StabilityRule(args.stability_windows, args.stability_percentage / 100, latency_key),
            max_trials=args.max_trials,
            warmup_requests=args.warmup_requests,
            warmup_s=args.warmup_seconds,
            drain=not args.no_drain,
            batch_size=args.batch_size,
        ),
        engine=EngineSettings(
            late_threshold_ns=int(args.late_threshold * 1e6), stop_timeout_s=args.request_timeout + STOP_GRACE_S
        ),
        metrics_url=args.metrics_url,
        csv_file=args.csv,
        output_dir_option=args.output_dir,
        report=not args.no_report,
        latency_budget=args.latency_budget,
        arguments=recorded_arguments(args),
    )


def default_metrics_url(url: str) -> str:
    """Triton's metrics port (8002) on the host the inference URL names."""
    host = url.split("://")[-1].rsplit(":", 1)[0] or "localhost"
    return f"http://{host}:8002/metrics"
