"""The flags of a sweep (``perfprobe sweep`` and ``perfprobe compare``), as argparse options.

Names and defaults are the library's (``perfprobe.runs.options.SweepOptions``): the command
line only spells them as flags. Validation is the library's too.
"""

from __future__ import annotations

import argparse

from perfprobe.client.compression import ALGORITHMS
from perfprobe.client.tensors import TENSOR_FORMATS
from perfprobe.commands.common import add_shared_memory_options
from perfprobe.load.runtime import WORKER_KINDS
from perfprobe.load.schedule import DISTRIBUTIONS
from perfprobe.runs.options import default
from perfprobe.transport import MODES, connections


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-m",
        "--model",
        action="append",
        help="model name (required, here or in --config); repeat for several models loaded at once, each "
        "NAME or NAME@c=N / NAME@rate=R (a fixed level of its own) / NAME@data=FILE",
    )
    parser.add_argument("--config", help="YAML file whose keys are this command's long options; flags override it")
    load = parser.add_argument_group("load")
    levels = load.add_mutually_exclusive_group()
    levels.add_argument("--concurrency", help="closed loop: START[:END[:STEP]]; STEP may be xN (e.g. 1:32:x2)")
    levels.add_argument("--request-rate", help="open loop: requests/s START[:END[:STEP]]")
    levels.add_argument("--request-intervals", metavar="FILE", help="open loop: microseconds between sends, per line")
    levels.add_argument(
        "--request-trace",
        metavar="FILE",
        help='open loop at a recorded trace\'s times: JSON Lines of {"timestamp_ms": T[, "inputs": {...}]}',
    )
    load.add_argument(
        "--trace-speedup",
        type=float,
        default=default("trace_speedup"),
        metavar="X",
        help="replay a trace X times as fast",
    )
    load.add_argument("--trace-loop", action="store_true", help="replay a trace again and again (else once)")
    load.add_argument(
        "--distribution", choices=DISTRIBUTIONS, default=default("distribution"), help="request-rate arrivals"
    )
    load.add_argument(
        "--max-inflight", type=int, help="open loop: workers, i.e. requests in flight at most (default 64)"
    )
    load.add_argument("--latency-threshold", type=float, metavar="MS", help="stop once latency passes this")
    load.add_argument("--binary-search", action="store_true", help="find the highest level under the threshold")
    load.add_argument("--mode", choices=MODES, default=default("mode"), help="sync, async or stream (gRPC)")
    load.add_argument(
        "--workers",
        choices=WORKER_KINDS,
        help="worker kind (default: greenlet, but thread for HTTP when each load process keeps at most 4 requests "
        "in flight; with --grpc-transport grpcio, asyncio for streams and thread for unary calls)",
    )
    load.add_argument(
        "--grpc-transport",
        choices=connections(),
        default=default("grpc_transport"),
        help="gRPC on thread and greenlet workers: perfprobe's own HTTP/2 connection per worker "
        "(h2, the default) or grpcio's channel",
    )
    load.add_argument(
        "--compression",
        choices=ALGORITHMS,
        help="compress requests (and, over HTTP, ask for compressed answers); each request is compressed "
        "once when built over HTTP, as it is sent over gRPC",
    )
    load.add_argument(
        "--request-parameter",
        action="append",
        default=[],
        metavar="NAME:VALUE:TYPE",
        help="a custom parameter every request carries, TYPE string, int, float or bool (repeatable)",
    )
    for side in ("input", "output"):
        load.add_argument(
            f"--{side}-tensor-format",
            choices=TENSOR_FORMATS,
            default=default(f"{side}_tensor_format"),
            help=f"HTTP: {side} tensors as binary data after the JSON header (the default) or as JSON "
            "values in it (for KServe v2 servers without Triton's binary extension; FP16/BF16 stay binary)",
        )
    load.add_argument(
        "--processes",
        metavar="N|auto",
        help="load processes, merged into one measurement (default 1; auto: one per usable core, "
        "or per CPU of the --cluster)",
    )
    load.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="spread the load processes over a Ray cluster: ray://HEAD:10001, HEAD:6379, or auto (RAY_ADDRESS); "
        "needs pip install 'perfprobe[cluster]'",
    )
    load.add_argument(
        "--cluster-runtime-env",
        metavar="JSON",
        help='Ray runtime_env for nodes without perfprobe, e.g. \'{"pip": ["perfprobe"]}\'',
    )
    load.add_argument(
        "--request-timeout", type=float, default=default("request_timeout"), metavar="S", help="per-request timeout"
    )
    load.add_argument(
        "--decode-outputs",
        action="store_true",
        help="decode every response's outputs (timed as Client Recv); off, only the status is checked",
    )
    sequences = parser.add_argument_group("sequence models (used when the model has a sequence batcher)")
    sequences.add_argument(
        "--sequence-length", type=int, metavar="N", help="steps per sequence (default 20; a JSON data stream's length)"
    )
    sequences.add_argument(
        "--sequence-length-variation",
        type=float,
        default=default("sequence_length_variation"),
        metavar="PCT",
        help="each sequence's length drawn within +/- PCT%% of --sequence-length",
    )
    sequences.add_argument(
        "--sequence-id-range", metavar="START[:END]", help="correlation ids, END excluded (default from 1, unbounded)"
    )
    sequences.add_argument(
        "--serial-sequences", action="store_true", help="open loop: at most one request in flight per sequence"
    )
    sequences.add_argument(
        "--num-of-sequences",
        type=int,
        default=default("num_of_sequences"),
        metavar="N",
        help="open loop: sequences live at once",
    )
    sequences.add_argument(
        "--string-sequence-ids",
        action="store_true",
        help="send correlation ids as strings (automatic when the model's CORRID control is TYPE_STRING)",
    )
    data = parser.add_argument_group("data")
    data.add_argument("-b", "--batch-size", type=int, default=default("batch_size"))
    data.add_argument("--shape", action="append", default=default("shape"), metavar="NAME:d1,d2")
    data.add_argument("--input-data", default=default("input_data"), help="zero, random, a JSON data file or a folder")
    data.add_argument(
        "--string-length", type=int, default=default("string_length"), help="BYTES element length for generated data"
    )
    data.add_argument("--data-items", type=int, default=default("data_items"), help="distinct generated data items")
    add_shared_memory_options(data, None)
    measure = parser.add_argument_group("measurement")
    measure.add_argument(
        "--measurement-interval", type=int, default=default("measurement_interval"), metavar="MS", help="window length"
    )
    measure.add_argument(
        "--measurement-mode", choices=("time_windows", "count_windows"), default=default("measurement_mode")
    )
    measure.add_argument(
        "--measurement-request-count",
        type=int,
        default=default("measurement_request_count"),
        help="requests per count window",
    )
    measure.add_argument("--stability-percentage", type=float, default=default("stability_percentage"))
    measure.add_argument("--stability-windows", type=int, default=default("stability_windows"))
    measure.add_argument("--max-trials", type=int, default=default("max_trials"))
    measure.add_argument("--percentile", type=float, help="latency percentile that must be stable (default: mean)")
    measure.add_argument("--warmup-requests", type=int, default=default("warmup_requests"))
    measure.add_argument("--warmup-seconds", type=float, default=default("warmup_seconds"))
    measure.add_argument(
        "--no-drain",
        action="store_true",
        help="closed loop: do not pause at window boundaries (server/client counts may differ)",
    )
    measure.add_argument("--metrics-url", help="Prometheus endpoint (default: port 8002 on the server's host)")
    measure.add_argument(
        "--late-threshold",
        type=float,
        default=default("late_threshold"),
        metavar="MS",
        help="open loop: a send this far behind schedule counts as late",
    )
    measure.add_argument(
        "--send-spin",
        type=float,
        default=default("send_spin"),
        metavar="US",
        help="open loop: yield through the last US microseconds before each send instead of sleeping them, "
        "for sends within a few µs of schedule at that much client CPU per send (default 0: sleep; a send "
        "then leaves some 50-200 µs after its instant, counted in the intended-time latency)",
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
        "--export-requests",
        action="store_true",
        help="also write requests.jsonl: every measured request's send and end times (wall clock, ns), "
        "outcome, model and load process (each level written as it ends, then let go of)",
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
