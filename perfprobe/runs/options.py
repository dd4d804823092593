"""A sweep's options, named as the long command-line options are (``--request-rate`` is ``request_rate``).

``SweepOptions`` is what a user gives (``perfprobe.sweep(model, concurrency="1:4", ...)`` or
the flags of ``perfprobe sweep``); ``perfprobe.runs.plan`` validates it into what a run needs.
The command line takes its defaults from here, so the library and the command cannot drift
apart. This module imports nothing heavy: the command line reads it before gevent patching.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from perfprobe.errors import UsageError

if TYPE_CHECKING:
    from perfprobe.client.tls import TlsFiles

DEFAULT_MAX_INFLIGHT = 64  # open loop: workers, and so requests in flight at most
Choices = tuple[str, ...] | Callable[[], tuple[str, ...]]

# argparse groups, by the name a declaration gives (None: the command's own options, listed first)
GROUPS = {
    "tls": "TLS (with an https:// or grpcs:// URL, or any of these files)",
    "load": "load",
    "sequences": "sequence models (used when the model has a sequence batcher)",
    "data": "data",
    "generate": "generative models (--endpoint generate or generate_stream, or a gRPC stream)",
    "measurement": "measurement",
    "output": "output",
}


@dataclass(frozen=True)
class Declared:
    """How one option is spelled and explained everywhere: flags, help, choices, and its name in results.json."""

    help: str
    flags: tuple[str, ...] = ()  # short flags besides --long-name
    group: str | None = "load"
    kind: type = str  # what the command line converts its text to
    choices: Choices | None = None  # a callable where the choices come from a registry (protocols)
    metavar: str | None = None
    records: str | None = None  # the name results.json's settings keep its value under (as given)
    exclusive: str | None = None  # options sharing this name exclude each other on the command line
    repeat: bool = False  # may be given several times (a list)
    shown_default: str | None = None  # the default as help says it, where the field's is None (computed)

    def allowed(self) -> tuple[str, ...] | None:
        return self.choices() if callable(self.choices) else self.choices


def option(default: Any, help: str, **how: Any) -> Any:
    """A ``SweepOptions`` field with its declaration: one place says everything about an option."""
    declared = Declared(help, **how)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"option": declared})
    return field(default=default, metadata={"option": declared})


def _choices_of(module: str, name: str) -> Callable[[], tuple[str, ...]]:
    """Choices kept where they belong (a registry, a protocol's module), read when a parser or plan asks."""

    def read() -> tuple[str, ...]:
        import importlib

        found = getattr(importlib.import_module(module), name)
        return tuple(found() if callable(found) else found)

    return read


SHARED_MEMORY = ("none", "system", "cuda")
LEVELS = "levels"  # the exclusive group of the four ways to give load levels


@dataclass
class SweepOptions:
    """Every option of a sweep, by its long option's name (``--request-rate`` is ``request_rate``), each declared once.

    The command line's flags and help, YAML configs, ``perfprobe.sweep(**keywords)``, the choices a plan
    checks and the settings results.json records all read these declarations (docs/extending.md).
    """

    model: str | list[str] | None = option(
        None,
        "model name (required, here or in --config); repeat for several models loaded at once, each NAME or "
        "NAME@c=N / NAME@rate=R (a fixed level of its own) / NAME@data=FILE",
        flags=("-m",),
        group=None,
        repeat=True,
    )
    url: str | None = option(
        None,
        "server address",
        flags=("-u",),
        group=None,
        shown_default="localhost:8000 for HTTP, localhost:8001 for gRPC",
    )
    protocol: str = option(
        "http",
        "protocol",
        flags=("-i",),
        group=None,
        choices=_choices_of("perfprobe.transport", "protocols"),
        records="protocol",
    )
    endpoint: str = option(
        "infer",
        "what each request asks for: tensor inference (infer), or Triton's generate extension over HTTP: one "
        "JSON answer (generate) or server-sent events, one per response (generate_stream)",
        group=None,
        choices=_choices_of("perfprobe.transport", "endpoints"),
        records="endpoint",
    )
    header: list[str] | dict[str, str] = option(
        [], "extra header / gRPC metadata, repeatable", flags=("-H",), group=None, metavar="NAME:VALUE", repeat=True
    )
    ssl_ca_file: str | None = option(
        None,
        "the CA certificate that signed the server's",
        group="tls",
        metavar="PEM",
        shown_default="the system's roots",
    )
    ssl_cert_file: str | None = option(
        None, "a client certificate, for a server that asks for one", group="tls", metavar="PEM"
    )
    ssl_key_file: str | None = option(None, "the client certificate's private key", group="tls", metavar="PEM")
    serve: bool = option(
        False, "start the embedded Triton with the built-in models for this command and stop it after", group=None
    )
    serve_models: list[str] = option(
        [], "with --serve: extra model repositories to serve", group=None, metavar="DIR", repeat=True
    )
    concurrency: str | int | None = option(
        None, "closed loop: START[:END[:STEP]]; STEP may be xN (e.g. 1:32:x2)", exclusive=LEVELS, shown_default="1"
    )
    request_rate: str | float | None = option(None, "open loop: requests/s START[:END[:STEP]]", exclusive=LEVELS)
    request_intervals: str | None = option(
        None, "open loop: microseconds between sends, per line", metavar="FILE", exclusive=LEVELS
    )
    request_trace: str | None = option(
        None,
        'open loop at a recorded trace\'s times: JSON Lines of {"timestamp_ms": T[, "inputs": {...}]}',
        metavar="FILE",
        exclusive=LEVELS,
    )
    trace_speedup: float = option(1.0, "replay a trace X times as fast", kind=float, metavar="X")
    trace_loop: bool = option(False, "replay a trace again and again (else once)")
    distribution: str = option(
        "constant", "request-rate arrivals", choices=_choices_of("perfprobe.load.schedule", "DISTRIBUTIONS")
    )
    max_inflight: int | None = option(
        None, "open loop: workers, i.e. requests in flight at most", kind=int, shown_default=str(DEFAULT_MAX_INFLIGHT)
    )
    latency_threshold: float | None = option(
        None,
        "stop once latency (the one --percentile watches) passes this",
        kind=float,
        metavar="MS",
        records="latency_threshold_ms",
    )
    binary_search: bool = option(False, "find the highest level under the threshold", records="binary_search")
    mode: str = option(
        "sync", "sync, async or stream (gRPC)", choices=_choices_of("perfprobe.transport", "MODES"), records="mode"
    )
    workers: str | None = option(
        None,
        "worker kind",
        choices=_choices_of("perfprobe.load.runtime", "WORKER_KINDS"),
        shown_default="greenlet, but thread for HTTP when each load process keeps at most 4 requests in flight; "
        "with --grpc-transport grpcio, asyncio for streams and thread for unary calls",
    )
    grpc_transport: str = option(
        "h2",
        "gRPC on thread and greenlet workers: perfprobe's own HTTP/2 connection per worker (h2) or grpcio's channel",
        choices=_choices_of("perfprobe.transport", "connections"),
    )
    compression: str | None = option(
        None,
        "compress requests (and, over HTTP, ask for compressed answers); each request is compressed once when "
        "built over HTTP, as it is sent over gRPC",
        choices=_choices_of("perfprobe.client.compression", "ALGORITHMS"),
        records="compression",
        shown_default="none",
    )
    request_parameter: list[str | dict[str, Any]] | dict[str, Any] = option(
        [],
        "a custom parameter every request carries, TYPE string, int, float or bool (repeatable)",
        metavar="NAME:VALUE:TYPE",
        repeat=True,
    )
    input_tensor_format: str = option(
        "binary",
        "HTTP: input tensors as binary data after the JSON header or as JSON values in it (for KServe v2 "
        "servers without Triton's binary extension; FP16/BF16 stay binary)",
        choices=_choices_of("perfprobe.client.tensors", "TENSOR_FORMATS"),
    )
    output_tensor_format: str = option(
        "binary",
        "HTTP: output tensors asked for as binary data or as JSON values (FP16/BF16 stay binary)",
        choices=_choices_of("perfprobe.client.tensors", "TENSOR_FORMATS"),
    )
    request_timeout: float = option(30.0, "per-request timeout", kind=float, metavar="S", records="request_timeout_s")
    processes: int | str | None = option(
        None,
        "load processes, merged into one measurement (auto: one per usable core, or per CPU of the --cluster)",
        metavar="N|auto",
        shown_default="1",
    )
    cluster: str | None = option(
        None,
        "spread the load processes over a Ray cluster: ray://HEAD:10001, HEAD:6379, or auto (RAY_ADDRESS); "
        "needs pip install 'perfprobe[cluster]'",
        metavar="ADDRESS",
    )
    cluster_runtime_env: str | None = option(
        None, 'Ray runtime_env for nodes without perfprobe, e.g. \'{"pip": ["perfprobe"]}\'', metavar="JSON"
    )
    decode_outputs: bool = option(
        False, "decode every response's outputs (timed as Client Recv); off, only the status is checked"
    )
    sequence_length: int | None = option(
        None,
        "steps per sequence",
        group="sequences",
        kind=int,
        metavar="N",
        shown_default="20; a JSON data stream's length",
    )
    sequence_length_variation: float = option(
        20.0,
        "each sequence's length drawn within +/- PCT%% of --sequence-length",
        group="sequences",
        kind=float,
        metavar="PCT",
    )
    sequence_id_range: str | None = option(
        None,
        "correlation ids, END excluded",
        group="sequences",
        metavar="START[:END]",
        shown_default="from 1, unbounded",
    )
    serial_sequences: bool = option(False, "open loop: at most one request in flight per sequence", group="sequences")
    num_of_sequences: int = option(4, "open loop: sequences live at once", group="sequences", kind=int, metavar="N")
    string_sequence_ids: bool = option(
        False,
        "send correlation ids as strings (automatic when the model's CORRID control is TYPE_STRING)",
        group="sequences",
    )
    batch_size: int = option(1, "requests' batch size", flags=("-b",), group="data", kind=int, records="batch_size")
    shape: list[str] = option(
        [],
        "the shape of an input with variable dimensions (repeatable); add :DATATYPE for a model whose server "
        "lists no inputs",
        group="data",
        metavar="NAME:d1,d2[:TYPE]",
        repeat=True,
    )
    input_data: str = option("random", "zero, random, a JSON data file or a folder", group="data")
    string_length: int = option(16, "BYTES element length for generated data", group="data", kind=int)
    data_items: int = option(1, "distinct generated data items", group="data", kind=int)
    shared_memory: str = option(
        "none",
        "how tensors travel: on the wire (none), POSIX shared memory, or CUDA shared memory",
        group="data",
        choices=SHARED_MEMORY,
        records="shared_memory",
    )
    output_shared_memory_size: int | None = option(
        None,
        "bytes per output region for outputs without a fixed size",
        group="data",
        kind=int,
        metavar="BYTES",
        shown_default="the model's output sizes",
    )
    cuda_device: int = option(0, "with --shared-memory cuda: the GPU to use", group="data", kind=int, metavar="N")
    prompt_tokens: str | None = option(
        None,
        "synthetic prompts (text_input) of MEAN tokens (words without --tokenizer), drawn from a fixed seed",
        group="generate",
        metavar="MEAN[:STDDEV]",
        records="prompt_tokens",
        shown_default="128 for a model with a text_input input",
    )
    output_tokens: str | None = option(
        None,
        "tokens to generate per request (max_tokens), drawn per prompt",
        group="generate",
        metavar="MEAN[:STDDEV]",
        records="output_tokens",
        shown_default="16 for a model with a max_tokens input",
    )
    prompts: int = option(100, "distinct synthetic prompts", group="generate", kind=int, metavar="N")
    tokenizer: str | None = option(
        None,
        "a local Hugging Face tokenizer.json (or its folder) to count tokens of generated text and prompts; "
        "nothing is downloaded",
        group="generate",
        metavar="PATH",
        records="tokenizer",
        shown_default="one token per streamed response with output, prompts in words",
    )
    goodput: str | None = option(
        None,
        "count the requests/s meeting every limit, e.g. 'ttft<200ms,itl<20ms,latency<2s' (Request Goodput)",
        group="generate",
        metavar="LIMITS",
        records="goodput",
    )
    measurement_interval: int = option(
        5000, "window length", group="measurement", kind=int, metavar="MS", records="window_ms"
    )
    measurement_mode: str = option(
        "time_windows",
        "windows of a fixed time, or of a fixed number of requests",
        group="measurement",
        choices=("time_windows", "count_windows"),
    )
    measurement_request_count: int = option(
        50, "requests per count window", group="measurement", kind=int, records="window_requests"
    )
    stability_percentage: float = option(
        10.0,
        "a level is stable when, over the last --stability-windows windows, max/min of throughput and of "
        "the chosen latency are within 1 + this percentage",
        group="measurement",
        kind=float,
        records="stability_percentage",
    )
    stability_windows: int = option(
        3,
        "windows that must agree for a level to be stable (its figures come from them)",
        group="measurement",
        kind=int,
        records="stability_windows",
    )
    max_trials: int = option(
        10,
        "windows at most per level; a level that never stabilises is kept and marked Stable=no",
        group="measurement",
        kind=int,
        records="max_windows",
    )
    percentile: float | None = option(
        None,
        "latency percentile that must be stable (50, 90, 95, 99 or 99.9)",
        group="measurement",
        kind=float,
        shown_default="--latency-budget's percentile when one is given, else the mean",
    )
    warmup_requests: int = option(
        0,
        "requests sent and not measured before each level's first window",
        group="measurement",
        kind=int,
        records="warmup_requests",
    )
    warmup_seconds: float | None = option(
        None,
        "seconds of load not measured before each level's first window (0: none)",
        group="measurement",
        kind=float,
        shown_default="a fifth of a time window, at most 1 s; none with count windows, --warmup-requests or a trace",
    )
    repeats: int = option(
        1,
        "measure the whole sweep N times, level by level in turn (a compare: each cell in turn at each level); "
        "each figure then gets a 95%% confidence interval over the runs (t-interval of the mean; for a percentile, "
        "a bootstrap of the median)",
        group="measurement",
        kind=int,
        metavar="N",
        records="repeats",
    )
    no_drain: bool = option(
        False, "closed loop: do not pause at window boundaries (server/client counts may differ)", group="measurement"
    )
    metrics_url: str | None = option(
        None, "Prometheus endpoint", group="measurement", shown_default="port 8002 on the server's host"
    )
    late_threshold: float = option(
        1.0,
        "open loop: a send this far behind schedule counts as late",
        group="measurement",
        kind=float,
        metavar="MS",
    )
    send_spin: float = option(
        0.0,
        "open loop: yield through the last US microseconds before each send instead of sleeping them, for sends "
        "within a few µs of schedule at that much client CPU per send (0: sleep; a send then leaves some "
        "50-200 µs after its instant, counted in the intended-time latency)",
        group="measurement",
        kind=float,
        metavar="US",
    )
    csv: str | None = option(None, "also write the CSV here", flags=("-f",), group="output")
    output_dir: str | None = option(
        None, "where results go", group="output", shown_default="reports/<timestamp>-<model>/"
    )
    no_report: bool = option(
        False,
        "skip the charts, summary.md and report.html written at the end (perfprobe report makes them later)",
        group="output",
    )
    export_requests: bool = option(
        False,
        "also write requests.jsonl: every measured request's send and end times (wall clock, ns), outcome, "
        "model and load process (each level written as it ends, then let go of)",
        group="output",
        records="export_requests",
    )
    history: str | None = option(
        None,
        "add the finished run (its levels, runs and settings) to this history database, created when missing; "
        "perfprobe history show/detect and gate --against-history read it",
        group="output",
        metavar="DB",
    )
    latency_budget: str | None = option(
        None,
        "the report names the highest load within this latency, e.g. 5ms or p95=2ms (default metric p99)",
        group="output",
        metavar="[METRIC=]DURATION",
    )

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def declared(cls) -> dict[str, Declared]:
        """Every option's declaration, by name, in declaration order."""
        return {f.name: f.metadata["option"] for f in dataclasses.fields(cls)}

    def recorded(self) -> dict[str, Any]:
        """The options results.json keeps as given, under the names their declarations record them by."""
        return {d.records: getattr(self, name) for name, d in self.declared().items() if d.records}

    @classmethod
    def from_keywords(cls, keywords: dict[str, Any]) -> SweepOptions:
        """Options from keyword arguments; an unknown name is a UsageError, as an unknown flag is."""
        unknown = sorted(set(keywords) - cls.names())
        if unknown:
            raise UsageError(f"unknown sweep options: {', '.join(unknown)}")
        return cls(**keywords)

    @classmethod
    def from_namespace(cls, namespace: object) -> SweepOptions:
        """The options an argparse namespace holds (the command's own plumbing left out)."""
        return cls(**{name: getattr(namespace, name) for name in cls.names() if hasattr(namespace, name)})


def process_count(options: SweepOptions) -> int | None:
    """``--processes``: N, or ``auto`` (None: one per usable core or cluster CPU); 1 by default, auto on a cluster."""
    value = options.processes
    if value is None or value == "":
        return None if options.cluster else 1
    if str(value).strip().lower() == "auto":
        return None
    try:
        count = int(str(value))
    except ValueError:
        raise UsageError(f"--processes must be a number or auto, not {value!r}") from None
    if count < 1:
        raise UsageError("--processes must be at least 1")
    return count


def most_in_flight(options: SweepOptions) -> int:
    """The most requests the run keeps in flight: its top concurrency, or the open loop's worker count."""
    from perfprobe.load.ranges import parse_range

    if options.request_trace or options.request_intervals or options.request_rate not in (None, ""):
        return options.max_inflight or DEFAULT_MAX_INFLIGHT
    return int(max(parse_range(concurrency_text(options), "--concurrency", integer=True, minimum=1)))


def concurrency_text(options: SweepOptions) -> str:
    """``--concurrency`` as given, ``1`` when it is not."""
    return str(options.concurrency) if options.concurrency not in (None, "") else "1"


def worker_kind(options: SweepOptions) -> str:
    """The run's worker kind: as given, else the default for the requests each load process keeps in flight.

    The command line asks this before it patches anything, so it reads only the options (and, for
    ``--processes auto`` on this machine, the usable cores). Where that number is not known before
    the run (``auto`` on a cluster, several models at once) the default does not count on it.
    """
    from perfprobe.load.runtime import usable_cores
    from perfprobe.transport import transport_for

    if options.workers:
        return options.workers
    processes = process_count(options)
    if processes is None and not options.cluster:
        processes = usable_cores()  # what --processes auto starts here
    several = not isinstance(options.model, str) and len(options.model or []) > 1
    per_process = None if processes is None or several else -(-most_in_flight(options) // processes)
    transport = transport_for(options.protocol, options.endpoint)
    return transport.default_worker_kind(options.mode, options.grpc_transport, per_process)


def default(name: str) -> Any:
    """The library's default for one option, for the command line's help and parser."""
    found = {f.name: f for f in dataclasses.fields(SweepOptions)}[name]
    if found.default_factory is not dataclasses.MISSING:
        return found.default_factory()
    return found.default


def check_address(url: str | None) -> None:
    """Refuse, as a usage error, a ``-u`` no client could connect to (``client.factory.check_url`` says why)."""
    if not url:
        return
    from perfprobe.client.factory import check_url

    try:
        check_url(url)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def tls_files(ca_file: str | None, cert_file: str | None, key_file: str | None) -> TlsFiles | None:
    """The TLS files given (None: none; the URL's scheme alone says whether to use TLS), each checked now."""
    from pathlib import Path

    from perfprobe.client.tls import TlsFiles

    if ca_file is None and cert_file is None and key_file is None:
        return None
    if key_file is not None and cert_file is None:
        raise UsageError("--ssl-key-file needs --ssl-cert-file (the certificate the key belongs to)")
    for option, path in (("--ssl-ca-file", ca_file), ("--ssl-cert-file", cert_file), ("--ssl-key-file", key_file)):
        if path is not None and not Path(path).is_file():
            raise UsageError(f"{option} {path}: no such file")
    return TlsFiles(ca_file, cert_file, key_file)


PARAMETER_TYPES = ("string", "int", "float", "bool")


def parse_request_parameters(
    values: list[str | dict[str, Any]] | dict[str, Any],
) -> dict[str, bool | int | float | str]:
    """``NAME:VALUE:TYPE`` strings (perf_analyzer's form; TYPE one of ``PARAMETER_TYPES``), or dicts
    (from Python or a YAML config) whose values keep their types: the custom parameters every request carries."""
    parameters: dict[str, bool | int | float | str] = {}
    for item in [values] if isinstance(values, dict) else values:
        if isinstance(item, dict):
            parameters.update(_plain_parameters(item))
        elif isinstance(item, str):
            name, _, rest = item.partition(":")
            value, typed, kind = rest.rpartition(":")
            if not name or not typed or kind not in PARAMETER_TYPES:
                raise UsageError(
                    f"--request-parameter {item!r}: expected NAME:VALUE:TYPE, TYPE one of {', '.join(PARAMETER_TYPES)}"
                )
            parameters[name] = _typed_parameter(item, value, kind)
        else:
            raise UsageError(f"--request-parameter {item!r}: expected NAME:VALUE:TYPE or a mapping")
    return parameters


def _plain_parameters(given: dict[str, Any]) -> dict[str, bool | int | float | str]:
    for name, value in given.items():
        if not isinstance(value, (bool, int, float, str)):
            raise UsageError(f"request parameter {name!r}: a bool, int, float or str, not {type(value).__name__}")
    return {str(name): value for name, value in given.items()}


def _typed_parameter(text: str, value: str, kind: str) -> bool | int | float | str:
    if kind == "string":
        return value
    if kind == "bool":
        if value.lower() not in ("true", "false"):
            raise UsageError(f"--request-parameter {text!r}: a bool is true or false")
        return value.lower() == "true"
    try:
        return int(value) if kind == "int" else float(value)
    except ValueError:
        raise UsageError(
            f"--request-parameter {text!r}: {value!r} is not a{'n int' if kind == 'int' else ' float'}"
        ) from None


def parse_headers(values: list[str | dict[str, Any]] | dict[str, Any]) -> dict[str, str]:
    """``NAME:VALUE`` strings or mappings (Python, a YAML config) as headers; gRPC metadata keys are lower case."""
    texts: list[str] = []
    for item in [values] if isinstance(values, dict) else values:
        texts += [f"{name}:{value}" for name, value in item.items()] if isinstance(item, dict) else [str(item)]
    headers = {}
    for value in texts:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header {value!r}: expected NAME:VALUE")
        if not _HEADER_NAME.fullmatch(name.strip()) or "\n" in content or "\r" in content:
            raise UsageError(f"--header {value!r}: a header name is letters, digits and -_.!#$%&'*+^`|~, one line")
        headers[name.strip().lower()] = content.strip()
    return headers


_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
