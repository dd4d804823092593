"""A sweep's options, named as the long command-line options are (``--request-rate`` is ``request_rate``).

``SweepOptions`` is what a user gives (``perfprobe.sweep(model, concurrency="1:4", ...)`` or
the flags of ``perfprobe sweep``); ``perfprobe.runs.plan`` validates it into what a run needs.
The command line takes its defaults from here, so the library and the command cannot drift
apart. This module imports nothing heavy: the command line reads it before gevent patching.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from perfprobe.errors import UsageError

if TYPE_CHECKING:
    from perfprobe.client.tls import TlsFiles

DEFAULT_MAX_INFLIGHT = 64  # open loop: workers, and so requests in flight at most


@dataclass
class SweepOptions:
    """Every option of a sweep, by its long option's name (``--request-rate`` is ``request_rate``)."""

    model: str | None = None
    url: str | None = None
    protocol: str = "http"
    header: list[str] | dict[str, str] = field(default_factory=list)
    ssl_ca_file: str | None = None  # TLS: the CA certificate that signed the server's (else the system's roots)
    ssl_cert_file: str | None = None  # TLS: a client certificate, for a server that asks for one
    ssl_key_file: str | None = None  # TLS: that certificate's private key
    serve: bool = False
    serve_models: list[str] = field(default_factory=list)
    concurrency: str | int | None = None
    request_rate: str | float | None = None
    request_intervals: str | None = None
    request_trace: str | None = None  # JSON Lines of {"timestamp_ms": ...}: open loop at the trace's times
    trace_speedup: float = 1.0  # replay the trace this many times faster
    trace_loop: bool = False  # replay it again and again (else a level ends when it is replayed)
    distribution: str = "constant"
    max_inflight: int | None = None
    latency_threshold: float | None = None
    binary_search: bool = False
    mode: str = "sync"
    workers: str | None = None
    grpc_transport: str = "h2"  # gRPC on thread/greenlet workers: our own HTTP/2 connection, or grpcio
    compression: str | None = None  # gzip or deflate: requests compressed (and HTTP's answers asked compressed)
    request_parameter: list[str | dict[str, Any]] | dict[str, Any] = field(default_factory=list)  # NAME:VALUE:TYPE
    input_tensor_format: str = "binary"  # HTTP: tensors as binary data after the JSON header, or in it (json)
    output_tensor_format: str = "binary"  # HTTP: answers' tensors likewise
    request_timeout: float = 30.0
    processes: int | str | None = None  # load processes: N or "auto"; default 1, or one per CPU with cluster
    cluster: str | None = None  # Ray cluster address, or "auto" (RAY_ADDRESS)
    cluster_runtime_env: str | None = None  # Ray runtime_env as JSON, for nodes without perfprobe
    decode_outputs: bool = False
    sequence_length: int | None = None  # steps per sequence; default 20, or a data stream's length
    sequence_length_variation: float = 20.0  # percent either side of --sequence-length
    sequence_id_range: str | None = None  # START[:END], END excluded
    serial_sequences: bool = False  # open loop: at most one request in flight per sequence
    num_of_sequences: int = 4  # open loop: sequences live at once
    string_sequence_ids: bool = False  # send correlation ids as strings (automatic for a TYPE_STRING CORRID control)
    batch_size: int = 1
    shape: list[str] = field(default_factory=list)
    input_data: str = "random"
    string_length: int = 16
    data_items: int = 1
    shared_memory: str = "none"
    output_shared_memory_size: int | None = None
    cuda_device: int = 0
    measurement_interval: int = 5000
    measurement_mode: str = "time_windows"
    measurement_request_count: int = 50
    stability_percentage: float = 10.0
    stability_windows: int = 3
    max_trials: int = 10
    percentile: float | None = None
    warmup_requests: int = 0
    warmup_seconds: float = 0.0
    no_drain: bool = False
    metrics_url: str | None = None
    late_threshold: float = 1.0
    send_spin: float = 0.0  # µs
    csv: str | None = None
    output_dir: str | None = None
    no_report: bool = False
    export_requests: bool = False  # keep every measured request, written as requests.jsonl
    latency_budget: str | None = None

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

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
    return transport_for(options.protocol).default_worker_kind(options.mode, options.grpc_transport, per_process)


def default(name: str) -> Any:
    """The library's default for one option, for the command line's help and parser."""
    found = {f.name: f for f in dataclasses.fields(SweepOptions)}[name]
    if found.default_factory is not dataclasses.MISSING:
        return found.default_factory()
    return found.default


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


def parse_headers(values: list[str] | dict[str, str]) -> dict[str, str]:
    """``NAME:VALUE`` strings (or a dict) as headers; gRPC metadata keys must be lower case."""
    if isinstance(values, dict):
        return {str(name).strip().lower(): str(value) for name, value in values.items()}
    headers = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header {value!r}: expected NAME:VALUE")
        headers[name.strip().lower()] = content.strip()
    return headers
