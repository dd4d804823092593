"""Options and helpers shared by the subcommands that talk to a server."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

from perfprobe.client import InferenceClient, make_client
from perfprobe.client.factory import DEFAULT_URLS


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-u", "--url", help="server address (default localhost:8000 for HTTP, localhost:8001 for gRPC)")
    parser.add_argument("-i", "--protocol", choices=("http", "grpc"), default="http", help="protocol (default http)")
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="extra header / gRPC metadata, repeatable",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="start the embedded Triton with the built-in models for this command and stop it after",
    )


def parse_headers(values: list[str]) -> dict[str, str]:
    from perfprobe.errors import UsageError

    headers = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header {value!r}: expected NAME:VALUE")
        headers[name.strip().lower()] = content.strip()  # gRPC metadata keys must be lower case
    return headers


@contextlib.contextmanager
def connect(
    args: argparse.Namespace, models: list[str] | None = None, concurrency: int = 1
) -> Iterator[InferenceClient]:
    """A client for the command's server; with ``--serve``, an embedded server on free ports."""
    server = None
    url = args.url
    if getattr(args, "serve", False):
        from perfprobe.server import EmbeddedServer

        server = EmbeddedServer(builtin_models=models, pick_free_ports=True).start()
        url = server.url(args.protocol)
    options = {"headers": parse_headers(args.header)}
    if args.protocol == "http":
        options["concurrency"] = concurrency
    client = make_client(args.protocol, url or DEFAULT_URLS[args.protocol], **options)
    try:
        yield client
    finally:
        client.close()
        if server is not None:
            server.stop()


def recorded_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The options a run was given, as its results record them (argparse's plumbing left out)."""
    return {k: v for k, v in vars(args).items() if k not in ("run", "subparser")}


def add_shared_memory_options(parser: argparse.ArgumentParser, output_size_default: int | None) -> None:
    """``--shared-memory`` and ``--output-shared-memory-size``, as sweep, compare and infer take them."""
    parser.add_argument(
        "--shared-memory",
        choices=("none", "system", "cuda"),
        default="none",
        help="how tensors travel: on the wire (none), POSIX shared memory, or CUDA shared memory",
    )
    parser.add_argument(
        "--output-shared-memory-size",
        type=int,
        default=output_size_default,
        metavar="BYTES",
        help="bytes per output region for outputs without a fixed size"
        + (f" (default {output_size_default})" if output_size_default else ""),
    )
    parser.add_argument(
        "--cuda-device", type=int, default=0, metavar="N", help="with --shared-memory cuda: the GPU to use"
    )
