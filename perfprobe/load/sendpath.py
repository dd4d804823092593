"""How a load run sends: the worker runtime and a factory of per-worker senders, for one client.

Defaults, and why (``docs/benchmarks.md`` holds the figures): greenlets, each worker waiting on
a socket of its own, but for HTTP where a process keeps at most a few requests in flight: there
a thread per worker on a plain blocking socket skips gevent's hub round per answer
(``runtime.default_worker_kind``). HTTP on geventhttpclient's sockets; gRPC, unary
calls and streams alike, on an HTTP/2 connection per worker that perfprobe speaks itself
(``grpc_wire``): about a third of grpcio's client CPU per request and no cross-thread hand-off
per answer, which is what decides the round trip at one or two requests in flight. One thread
with an event loop beats many GIL-bound threads for a Python client from eight in flight on.
With ``--grpc-transport grpcio`` gRPC goes through grpcio:
streams best as coroutines on one ``grpc.aio`` event loop, unary calls on threads.

The choice reads the client's declared abilities (``cooperative``, ``supports_streams``), not
its protocol's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from perfprobe.client import InferenceClient
from perfprobe.errors import UsageError
from perfprobe.load.runtime import Runtime, make_runtime
from perfprobe.load.senders import BlockingSender, FutureSender, Sender, StreamSender, WireStreamSender

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
    if mode == "stream" and not client.supports_streams:
        raise UsageError(f"--mode stream needs bidirectional streams, which {client.protocol} does not have")
    if grpc_transport == "h2" and not client.cooperative:
        wire = _wire_path(client, mode, runtime, request_timeout_s, decode_outputs)
        if wire is not None:
            return wire
    if mode == "stream":
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
    if mode == "async" or runtime.kind == "greenlet":  # a blocking call would stall every greenlet
        return SendPath(runtime, lambda: FutureSender(client, runtime, request_timeout_s, decode_outputs), notes)
    return SendPath(runtime, lambda: BlockingSender(client.dedicated(blocking=True), decode=decode_outputs))


def _wire_path(
    client: InferenceClient, mode: str, runtime: Runtime, request_timeout_s: float, decode_outputs: bool
) -> SendPath | None:
    """Each worker on an HTTP/2 connection of its own, waiting on its socket (None: the client has none)."""
    cooperative = runtime.kind == "greenlet"
    if mode == "stream":
        if client.wire_stream(cooperative) is None:
            return None
        return SendPath(runtime, lambda: WireStreamSender(client.wire_stream(cooperative), request_timeout_s))
    if client.wire_connection(cooperative) is None:
        return None

    def unary_sender() -> Sender:
        connection = client.wire_connection(cooperative)
        assert connection is not None
        return BlockingSender(connection, decode=decode_outputs)

    notes = ["on perfprobe's own HTTP/2 connection, sync and async are the same: each worker waits on its socket"]
    return SendPath(runtime, unary_sender, notes if mode == "async" else [])


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
