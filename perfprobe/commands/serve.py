"""``perfprobe serve``: run the embedded real Triton in the foreground until Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import time

from perfprobe import exitcodes
from perfprobe.server.repository import BUILTIN_MODELS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="run the embedded Triton server with the built-in models")
    parser.add_argument(
        "--models", action="append", default=[], metavar="DIR", help="an extra model repository folder (repeatable)"
    )
    parser.add_argument(
        "--builtin",
        default=",".join(BUILTIN_MODELS),
        help=f"built-in models to serve, comma-separated, or 'none' (default {','.join(BUILTIN_MODELS)})",
    )
    parser.add_argument("--http-port", type=int, default=8000, help="HTTP port on 127.0.0.1 (default 8000)")
    parser.add_argument("--grpc-port", type=int, default=8001, help="gRPC port on 127.0.0.1 (default 8001)")
    parser.add_argument("--metrics-port", type=int, default=8002, help="metrics port on 127.0.0.1 (default 8002)")
    parser.add_argument("--free-ports", action="store_true", help="pick free ports instead of the given ones")
    parser.add_argument("--log-verbose", type=int, default=0, help="tritonserver --log-verbose level (default 0)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from perfprobe.errors import UsageError
    from perfprobe.server import EmbeddedServer

    builtin = (
        [] if args.builtin.strip().lower() == "none" else [m.strip() for m in args.builtin.split(",") if m.strip()]
    )
    unknown = set(builtin) - set(BUILTIN_MODELS)
    if unknown:
        raise UsageError(f"--builtin: unknown models {sorted(unknown)}; known: {', '.join(BUILTIN_MODELS)}")
    server = EmbeddedServer(
        builtin_models=builtin,
        model_repositories=args.models,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        pick_free_ports=args.free_ports,
        log_verbose=args.log_verbose,
    )
    try:
        with server:
            print(f"Triton {server.version} ready (models: {_ready_models(server.http_url) or 'none'})")
            print(f"  HTTP     http://{server.http_url}")
            print(f"  gRPC     {server.grpc_url}")
            print(f"  metrics  {server.metrics_url}")
            print(f"  log      {server.log_path}")
            print("Ctrl-C to stop.", flush=True)
            while True:  # until Ctrl-C, or SIGTERM (the command line raises it as KeyboardInterrupt)
                time.sleep(0.5)
                if not server.is_running():
                    print(f"tritonserver exited unexpectedly:\n{server.log_tail()}", flush=True)
                    return exitcodes.SERVER_UNAVAILABLE
    except KeyboardInterrupt:  # the command line turns SIGTERM into this too
        pass
    print("stopped.")
    return 0


def _ready_models(http_url: str) -> str:
    """The models the server has ready, built-in and from ``--models`` alike, as the server lists them."""
    from perfprobe.client import make_client

    with make_client("http", http_url, timeout_s=10.0) as client:
        return ", ".join(sorted(entry["name"] for entry in client.repository_index(ready_only=True)))
