"""Choose and build the sender and worker runtime for a protocol, mode and worker kind.

Defaults, and why: HTTP runs on greenlets (geventhttpclient is built for gevent, and one
thread with an event loop beats many GIL-bound threads for a Python client); gRPC runs on
threads (grpcio's blocking calls release the GIL, while greenlets must go through futures
and a cross-thread wake-up for every request). ``docs/benchmarks.md`` holds the figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from perfprobe.client import InferenceClient, make_client
from perfprobe.errors import UsageError
from perfprobe.load.runtime import Runtime, make_runtime
from perfprobe.load.senders import BlockingSender, FutureSender, Sender, StreamSender

MODES = ("sync", "async", "stream")
DEFAULT_WORKERS = {"http": "greenlet", "grpc": "thread"}


@dataclass
class Transport:
    """What a load run sends with: a runtime, a factory of per-worker senders, the shared client."""

    runtime: Runtime
    sender_factory: Callable[[], Sender]
    shared_client: InferenceClient
    notes: list[str] = field(default_factory=list)


class _ThreadConnection:
    """A thread worker's own client and its one kept connection, closed together."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._connection = client.dedicated(blocking=True)
        self.send_raw = self._connection.send_raw
        self.decode_raw = self._connection.decode_raw

    @property
    def last_send_ns(self) -> int:
        return self._connection.last_send_ns

    @property
    def last_resent(self) -> bool:
        return self._connection.last_resent

    def close(self) -> None:
        self._connection.close()
        self._client.close()


def check_combination(protocol: str, mode: str, decoupled: bool) -> None:
    """Refuse combinations that cannot work, with the reason."""
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "stream" and protocol != "grpc":
        raise UsageError("--mode stream needs gRPC (bidirectional streams): add -i grpc")
    if decoupled and mode != "stream":
        raise UsageError("the model is decoupled: it can only be measured with -i grpc --mode stream")


def build_transport(
    protocol: str,
    url: str,
    mode: str,
    workers: str,
    max_workers: int,
    client_options: dict[str, Any],
    request_timeout_s: float,
    decode_outputs: bool = False,
) -> Transport:
    runtime = make_runtime(workers)
    notes: list[str] = []
    if protocol == "http":
        options = dict(client_options)
        options.setdefault("network_timeout", request_timeout_s)
        if mode == "async" and workers == "thread":
            notes.append("HTTP async requests run on greenlets; --workers thread has no effect for them")
            runtime = make_runtime("greenlet")
        if runtime.kind == "greenlet":
            shared = make_client("http", url, concurrency=max_workers, **options)
            # each greenlet keeps one connection of the shared pool for all its requests
            return Transport(
                runtime, lambda: BlockingSender(shared.dedicated(), owned=True, decode=decode_outputs), shared, notes
            )
        shared = make_client("http", url, **options)

        def per_thread() -> Sender:  # geventhttpclient objects belong to the thread that made them
            client = make_client("http", url, **options)
            return BlockingSender(_ThreadConnection(client), owned=True, decode=decode_outputs)

        return Transport(runtime, per_thread, shared, notes)
    options = dict(client_options)
    options.setdefault("timeout_s", request_timeout_s)
    shared = make_client("grpc", url, **options)
    if mode == "stream":
        return Transport(runtime, lambda: StreamSender(shared, runtime, request_timeout_s), shared, notes)
    if mode == "async" or runtime.kind == "greenlet":
        return Transport(
            runtime, lambda: FutureSender(shared, runtime, request_timeout_s, decode_outputs), shared, notes
        )
    return Transport(runtime, lambda: BlockingSender(shared, decode=decode_outputs), shared, notes)
