"""Options and helpers shared by the subcommands that talk to a server."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perfprobe.client import InferenceClient


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-u", "--url", help="server address (default localhost:8000 for HTTP, localhost:8001 for gRPC)")
    from perfprobe.transport import protocols

    parser.add_argument("-i", "--protocol", choices=protocols(), default="http", help="protocol (default http)")
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="extra header / gRPC metadata, repeatable",
    )
    tls = parser.add_argument_group("TLS (with an https:// or grpcs:// URL, or any of these files)")
    tls.add_argument("--ssl-ca-file", metavar="PEM", help="the CA certificate that signed the server's")
    tls.add_argument("--ssl-cert-file", metavar="PEM", help="a client certificate, for a server that asks for one")
    tls.add_argument("--ssl-key-file", metavar="PEM", help="the client certificate's private key")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="start the embedded Triton with the built-in models for this command and stop it after",
    )


@contextlib.contextmanager
def connect(
    args: argparse.Namespace, models: list[str] | None = None, concurrency: int = 1
) -> Iterator[InferenceClient]:
    """A client for the command's server; with ``--serve``, an embedded server on free ports."""
    from perfprobe.client import make_client
    from perfprobe.client.tls import client_options
    from perfprobe.runs.options import parse_headers, tls_files
    from perfprobe.runs.target import server_target

    tls = client_options(tls_files(args.ssl_ca_file, args.ssl_cert_file, args.ssl_key_file))
    with (
        server_target(args.protocol, args.url, serve=getattr(args, "serve", False), builtin_models=models) as target,
        make_client(
            target.protocol, target.url, concurrency=concurrency, headers=parse_headers(args.header), **tls
        ) as client,
    ):
        yield client


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
