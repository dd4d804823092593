"""How one worker sends one prepared request and waits for it, per protocol, mode and worker kind.

Every sender returns an ``Outcome``: the error code (None on success), the time spent
decoding the response (perf_analyzer's "Client Recv"), and for streamed requests the
arrival times of each response.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from perfprobe.client import InferenceServerError
from perfprobe.load.runtime import Runtime, Waiter

_now = time.perf_counter_ns


@dataclass
class Outcome:
    error: str | None = None
    send_ns: int = 0
    recv_ns: int = 0
    response_times: list[int] = field(default_factory=list)  # streamed responses carrying outputs


def error_code(exc: BaseException) -> str:
    if isinstance(exc, InferenceServerError):
        return exc.status
    return type(exc).__name__


class Sender:
    """Blocking send of one request, as seen by the worker that owns this sender."""

    def call(self, request: Any) -> Outcome:
        raise NotImplementedError

    def close(self) -> None:
        """Release what this sender holds (streams); the shared client is closed by its owner."""


class BlockingSender(Sender):
    """A synchronous call on a client whose ``send_raw`` blocks (HTTP on any kind, gRPC on threads)."""

    def __init__(self, client: Any, owned: bool = False, decode: bool = False) -> None:
        self._client = client
        self._owned = owned
        self._send = client.send_raw
        self._decode = client.decode_raw if decode else None

    def close(self) -> None:
        if self._owned:
            self._client.close()

    def call(self, request: Any) -> Outcome:
        try:
            raw = self._send(request)
        except Exception as exc:
            return Outcome(error=error_code(exc))
        send_ns = getattr(self._client, "last_send_ns", 0)
        if self._decode is None:  # the status was checked; decoding outputs is not load work
            return Outcome(send_ns=send_ns)
        started = _now()
        try:
            self._decode(raw)
        except Exception as exc:
            return Outcome(error=error_code(exc))
        return Outcome(send_ns=send_ns, recv_ns=_now() - started)


class FutureSender(Sender):
    """gRPC from a greenlet: send as a future, let grpc's thread wake the greenlet on completion."""

    def __init__(self, client: Any, runtime: Runtime, timeout_s: float, decode: bool = False) -> None:
        self._client = client
        self._waiter: Waiter = runtime.waiter()
        self._timeout_s = timeout_s
        self._decode = decode

    def call(self, request: Any) -> Outcome:
        future = self._client.send_raw_future(request)
        future.add_done_callback(self._waiter.set)
        try:
            done = self._waiter.get(self._timeout_s)
            raw = done.result()
        except Exception as exc:
            future.cancel()
            return Outcome(error=_grpc_code(exc))
        if not self._decode:
            return Outcome()
        started = _now()
        self._client.decode_raw(raw)
        return Outcome(recv_ns=_now() - started)


def _grpc_code(exc: BaseException) -> str:
    from perfprobe.client.grpc_client import rpc_error

    code = getattr(exc, "code", None)
    if callable(code):
        return rpc_error(exc).status
    return error_code(exc)


class StreamSender(Sender):
    """One gRPC bidirectional stream per worker, one request in flight on it at a time.

    A request is complete at its final response; for decoupled models perfprobe asks for an
    empty final response so the end is known even after zero responses.
    """

    def __init__(self, client: Any, runtime: Runtime, timeout_s: float) -> None:
        self._waiter: Waiter = runtime.waiter()
        self._timeout_s = timeout_s
        self._times: list[int] = []
        self._decode_ns = 0
        self._session = client.start_stream(self._on_response)

    def _on_response(self, result: Any, error: Exception | None) -> None:
        if error is not None:
            self._waiter.set(error)
            return
        if result.outputs:
            self._times.append(_now())
        if result.is_final:
            self._waiter.set(None)

    def call(self, request: Any) -> Outcome:
        self._times = []
        self._session.send(request)
        try:
            error = self._waiter.get(self._timeout_s)
        except Exception as exc:  # timed out waiting for the final response
            return Outcome(error=f"TIMEOUT ({type(exc).__name__})")
        if error is not None:
            return Outcome(error=error_code(error), response_times=list(self._times))
        return Outcome(response_times=list(self._times))

    def close(self) -> None:
        self._session.cancel()
