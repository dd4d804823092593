"""How a load run sends: the worker runtime and a factory of per-worker senders, for one client.

Defaults, and why (``docs/benchmarks.md`` holds the figures): HTTP runs on greenlets
(geventhttpclient is built for gevent, and one thread with an event loop beats many GIL-bound
threads for a Python client). gRPC streams run as coroutines on one asyncio event loop
(``grpc.aio``: no reader thread per stream, no hand-off per response; 25-40% more throughput
than thread workers). gRPC unary calls run on threads, each on an HTTP/2 connection of its own
(``grpc_wire``: a third of grpcio's client CPU per call and no cross-thread hand-off, which is
what decides the round trip at one or two requests in flight); ``--grpc-transport grpcio``
sends them through grpcio instead, as TLS and compression always do.

The choice reads the client's declared abilities (``cooperative``, ``supports_streams``), not
its protocol's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from perfprobe.client import InferenceClient
from perfprobe.errors import UsageError
from perfprobe.load.runtime import Runtime, make_runtime
from perfprobe.load.senders import BlockingSender, FutureSender, Sender, StreamSender

MODES = ("sync", "async", "stream")
GRPC_TRANSPORTS = ("h2", "grpcio")


@dataclass
class SendPath:
    """What a load run sends with: a worker runtime and a factory of per-worker senders."""

    runtime: Runtime
    sender_factory: Callable[[], Sender]
    notes: list[str] = field(default_factory=list)


def check_combination(protocol: str, mode: str, decoupled: bool) -> None:
    """Refuse combinations that cannot work, with the reason."""
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "stream" and protocol != "grpc":
        raise UsageError("--mode stream needs gRPC (bidirectional streams): add -i grpc")
    if decoupled and mode != "stream":
        raise UsageError("the model is decoupled: it can only be measured with -i grpc --mode stream")


def build_send_path(
    client: InferenceClient,
    mode: str,
    worker_kind: str,
    request_timeout_s: float,
    decode_outputs: bool = False,
    grpc_transport: str = "h2",
) -> SendPath:
    """The runtime and senders for ``mode`` on ``client`` (whose pool must fit the workers)."""
    if worker_kind == "asyncio":
        return _coroutine_path(client, mode, request_timeout_s, decode_outputs)
    runtime = make_runtime(worker_kind)
    notes: list[str] = []
    if mode == "stream":
        if not client.supports_streams:
            raise UsageError(f"--mode stream needs bidirectional streams, which {client.protocol} does not have")
        return SendPath(runtime, lambda: StreamSender(client, runtime, request_timeout_s), notes)
    if client.cooperative:
        if mode == "async" and runtime.kind == "thread":
            notes.append(f"{client.protocol} async requests run on greenlets; --workers thread has no effect for them")
            runtime = make_runtime("greenlet")
        # a greenlet keeps one connection of the client's pool; a thread gets a plain socket of its own
        blocking = runtime.kind == "thread"
        return SendPath(
            runtime,
            lambda: BlockingSender(client.dedicated(blocking=blocking), decode=decode_outputs),
            notes,
        )
    if grpc_transport == "h2":
        cooperative = runtime.kind == "greenlet"

        def wire_sender() -> Sender:
            connection = client.wire_connection(cooperative)
            assert connection is not None
            return BlockingSender(connection, decode=decode_outputs)

        if client.wire_connection(cooperative) is not None:  # each worker waits on its own socket
            return SendPath(runtime, wire_sender, notes)
        notes.append("unary gRPC goes through grpcio: perfprobe's own HTTP/2 connection carries no TLS or compression")
    if mode == "async" or runtime.kind == "greenlet":  # a blocking call would stall every greenlet
        return SendPath(runtime, lambda: FutureSender(client, runtime, request_timeout_s, decode_outputs), notes)
    return SendPath(runtime, lambda: BlockingSender(client.dedicated(blocking=True), decode=decode_outputs))


def _coroutine_path(client: InferenceClient, mode: str, request_timeout_s: float, decode_outputs: bool) -> SendPath:
    """Coroutines on one event loop: a unary call or a stream request awaited per worker."""
    if not client.supports_asyncio:
        raise UsageError(f"--workers asyncio drives gRPC only; {client.protocol} runs on greenlet or thread workers")
    from perfprobe.load.aio_senders import AioStreamSender, AioUnarySender

    runtime = make_runtime("asyncio")
    notes = []
    if mode == "stream":
        return SendPath(runtime, lambda: AioStreamSender(client, request_timeout_s))
    if mode == "async":
        notes.append("with asyncio workers, sync and async are the same: each worker awaits its call")
    return SendPath(runtime, lambda: AioUnarySender(client, decode_outputs), notes)
