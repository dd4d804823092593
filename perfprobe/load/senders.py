"""How one worker sends one prepared request and waits for it, per protocol, mode and worker kind.

Every sender returns an ``Outcome``: the error code (None on success), the server's reason
for a refusal, the time spent decoding the response (perf_analyzer's "Client Recv"), and for
streamed requests the arrival times of each response.

Every completion belongs to its own request: futures get one waiter per call, and a stream
carries a request id per call and is replaced after a timeout, so nothing that arrives late
for a request given up on can complete the next one. A request that timed out counts once,
as ``TIMEOUT``; whatever arrives for it later is dropped and counted in ``Outcome.dropped``.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from perfprobe.client import InferenceClient, InferenceServerError
from perfprobe.client.base import LoadConnection
from perfprobe.client.errors import TIMEOUT, UNREACHABLE
from perfprobe.load.runtime import TIMED_OUT, Runtime

_now = time.perf_counter_ns
STOPPED = "STOPPED"  # a request cut short because the run was stopping (server gone, Ctrl-C)
_ABORTED = object()
REASON_LIMIT = 200  # characters of a server's error message kept per distinct reason
FUTURE_GRACE_S = 1.0  # a future's own gRPC deadline normally fires first; this is the backstop


@dataclass
class Outcome:
    error: str | None = None
    send_ns: int = 0
    recv_ns: int = 0
    response_times: list[int] = field(default_factory=list)  # streamed responses carrying outputs
    reason: str = ""  # the server's message for a refused request
    resent: bool = False  # went out twice on HTTP (a stale kept-alive socket)
    dropped: int = 0  # late answers to earlier, timed-out requests, discarded


def error_code(exc: BaseException) -> str:
    if isinstance(exc, InferenceServerError):
        return exc.status
    if isinstance(exc, TimeoutError):
        return TIMEOUT
    return f"CLIENT {type(exc).__name__}"


def failed(exc: BaseException, **extra: Any) -> Outcome:
    """The outcome of a request that raised: its code, and the server's reason when it gave one."""
    code = error_code(exc)
    reason = ""
    if isinstance(exc, InferenceServerError):
        answered = exc.http_status is not None or exc.grpc_code is not None
        if answered and code != TIMEOUT and not exc.unreachable:
            reason = " ".join(exc.message.split())[:REASON_LIMIT]
    else:
        reason = str(exc)[:REASON_LIMIT]
    return Outcome(error=code, reason=reason, **extra)


class Sender:
    """Blocking send of one request, as seen by the worker that owns this sender."""

    def call(self, request: Any) -> Outcome:
        raise NotImplementedError

    def close(self) -> None:
        """Release what this sender holds (streams); the shared client is closed by its owner."""

    def abort(self) -> None:
        """From another thread, while stopping: end a wait that no answer will end (a dead stream)."""


class BlockingSender(Sender):
    """A synchronous call on the worker's own connection (HTTP on any kind, gRPC on threads).

    Timeouts are the client's own (socket timeout, gRPC deadline): a timed-out HTTP socket is
    discarded, so its late answer is never read as the next request's.
    """

    def __init__(self, connection: LoadConnection, decode: bool = False) -> None:
        self._connection = connection  # this worker's own: closed with the sender
        self._send = connection.send_raw
        self._decode = connection.decode_raw if decode else None

    def close(self) -> None:
        self._connection.close()

    def call(self, request: Any) -> Outcome:
        try:
            raw = self._send(request)
        except Exception as exc:
            return failed(exc, resent=self._connection.last_resent)
        send_ns = self._connection.last_send_ns
        resent = self._connection.last_resent
        if self._decode is None:  # the status was checked; decoding outputs is not load work
            return Outcome(send_ns=send_ns, resent=resent)
        started = _now()
        try:
            self._decode(raw)
        except Exception as exc:
            return failed(exc, resent=resent)
        return Outcome(send_ns=send_ns, recv_ns=_now() - started, resent=resent)


class FutureSender(Sender):
    """gRPC from a greenlet (or ``--mode async``): a future whose completion wakes this worker."""

    def __init__(
        self,
        client: InferenceClient,
        runtime: Runtime,
        timeout_s: float,
        decode: bool = False,
        grace_s: float = FUTURE_GRACE_S,
    ) -> None:
        self._client = client
        self._runtime = runtime
        self._timeout_s = timeout_s + grace_s
        self._decode = decode
        self._waiter: Any = None
        self._aborted = False

    def call(self, request: Any) -> Outcome:
        waiter = self._waiter = self._runtime.waiter()  # this call's own: a stale completion never reaches another
        if self._aborted:
            return Outcome(error=STOPPED)
        future = self._client.send_raw_future(request)
        future.add_done_callback(waiter.set)
        done = waiter.get(self._timeout_s)
        if done is TIMED_OUT or done is _ABORTED:
            future.cancel()
            return Outcome(error=TIMEOUT if done is TIMED_OUT else STOPPED)
        try:
            raw = future.result(timeout=0)
        except Exception as exc:
            return failed(_grpc_failure(exc))
        if not self._decode:
            return Outcome()
        started = _now()
        try:
            self._client.decode_raw(raw)
        except Exception as exc:
            return failed(exc)
        return Outcome(recv_ns=_now() - started)

    def abort(self) -> None:
        self._aborted = True
        waiter = self._waiter
        if waiter is not None:
            waiter.set(_ABORTED)


def _grpc_failure(exc: BaseException) -> BaseException:
    """A gRPC error as our ``InferenceServerError`` (with its status code); others unchanged."""
    if callable(getattr(exc, "code", None)):
        from perfprobe.client.grpc_client import rpc_error

        return rpc_error(exc)  # type: ignore[arg-type]
    return exc


_STREAM_REQUEST_ERROR = "STREAM_ERROR"  # the server refused one request; the stream itself goes on
OTHER_REQUEST = "other request"  # a stream response for a request given up on earlier
PARTIAL = "partial"  # one of a decoupled request's responses; more follow
FINAL = "final"  # the request's last response


def judge_stream_response(message: Any, request_id: str, times: list[int]) -> str | InferenceServerError:
    """What one ``ModelStreamInferResponse`` means for the request awaited (``request_id``).

    The server's refusal of it, ``OTHER_REQUEST``, ``PARTIAL`` or ``FINAL``; the arrival of a
    response that carries outputs is added to ``times``.
    """
    response = message.infer_response
    if message.error_message:
        if response.id and response.id != request_id:
            return OTHER_REQUEST
        return InferenceServerError(message.error_message, grpc_code=_STREAM_REQUEST_ERROR)
    if response.id != request_id:
        return OTHER_REQUEST
    if response.outputs:
        times.append(_now())
    final = response.parameters.get("triton_final_response")
    return FINAL if final is None or final.bool_param else PARTIAL


class WireStreamSender(Sender):
    """One ``ModelStreamInfer`` stream per worker on perfprobe's own HTTP/2 connection (``grpc_wire``).

    The same rules as the other stream senders: one request in flight, each with its own id,
    complete at its final response; a timeout or a broken stream closes the connection, so
    nothing still on its way can complete a later request.
    """

    _ids = itertools.count()

    def __init__(self, stream: Any, timeout_s: float) -> None:
        from perfprobe.client._proto.grpc_service_pb2 import ModelStreamInferResponse
        from perfprobe.client.grpc_client import with_request_id

        self._stream = stream  # this worker's own: closed with the sender
        self._parse = ModelStreamInferResponse.FromString
        self._with_id = with_request_id
        self._timeout_s = timeout_s
        self._prefix = f"pw{next(self._ids)}-"
        self._sequence = itertools.count()
        self._dropped = 0

    def call(self, request: Any) -> Outcome:
        request_id = f"{self._prefix}{next(self._sequence)}"
        times: list[int] = []
        try:
            started = _now()
            self._stream.write(self._with_id(request, request_id).payload, self._timeout_s)
            send_ns = _now() - started
            while True:
                raw = self._stream.read()
                if raw is None:
                    ended = InferenceServerError("the server ended the stream", failure=UNREACHABLE)
                    return failed(ended, response_times=times, dropped=self._take_dropped())
                verdict = judge_stream_response(self._parse(raw), request_id, times)
                if verdict is OTHER_REQUEST:
                    self._dropped += 1
                elif isinstance(verdict, InferenceServerError):
                    return failed(verdict, response_times=times, dropped=self._take_dropped())
                elif verdict is FINAL:
                    return Outcome(send_ns=send_ns, response_times=times, dropped=self._take_dropped())
        except InferenceServerError as exc:  # a timeout or a failed stream: the connection is closed
            return failed(exc, response_times=times, dropped=self._take_dropped())

    def _take_dropped(self) -> int:
        dropped, self._dropped = self._dropped, 0
        return dropped

    def close(self) -> None:
        self._stream.close()


class StreamSender(Sender):
    """One gRPC bidirectional stream per worker, one request in flight on it at a time.

    A request is complete at its final response; for decoupled models perfprobe asks for an
    empty final response so the end is known even after zero responses. Each request carries
    its own id; a stream whose request timed out, or that broke, is closed and replaced, and
    whatever its server still sends is dropped and counted.
    """

    _ids = itertools.count()

    def __init__(self, client: InferenceClient, runtime: Runtime, timeout_s: float) -> None:
        from perfprobe.client.grpc_client import with_request_id

        self._client = client
        self._runtime = runtime
        self._timeout_s = timeout_s
        self._with_id = with_request_id
        self._prefix = f"pp{next(self._ids)}-"
        self._sequence = itertools.count()
        self._times: list[int] = []
        self._expected = ""
        self._waiter: Any = None
        self._dropped = 0
        self._session: Any = None
        self._generation: object = None
        self._broken = False
        self._aborted = False
        self._open()

    def _open(self) -> None:
        self._broken = False
        generation = self._generation = object()
        self._session = self._client.start_stream(lambda result, error: self._on_response(generation, result, error))

    def _replace(self) -> None:
        """Give up on this stream: answers still on their way to it are dropped."""
        old = self._session
        self._session = None
        self._generation = object()
        if old is not None:
            old.cancel()

    def _on_response(self, generation: object, result: Any, error: Exception | None) -> None:
        if generation is not self._generation:
            self._dropped += 1  # from a stream this sender gave up on
            return
        waiter = self._waiter
        if error is not None:
            if getattr(error, "grpc_code", None) != _STREAM_REQUEST_ERROR:
                self._broken = True  # noticed even between requests, so none is sent into a dead stream
            if waiter is not None:
                waiter.set(error)
            return
        if result.id and result.id != self._expected:
            self._dropped += 1
            return
        if result.outputs:
            self._times.append(_now())
        if result.is_final and waiter is not None:
            waiter.set(None)

    def call(self, request: Any) -> Outcome:
        if self._broken:
            self._replace()
        if self._session is None:
            self._open()
        self._times = []
        self._expected = f"{self._prefix}{next(self._sequence)}"
        waiter = self._waiter = self._runtime.waiter()
        if self._aborted:  # checked after the waiter is published: abort() sees one or this sees it
            return Outcome(error=STOPPED)
        self._session.send(self._with_id(request, self._expected))
        value = waiter.get(self._timeout_s)
        self._waiter = None
        dropped, self._dropped = self._dropped, 0
        if value is TIMED_OUT:
            self._replace()
            return Outcome(error=TIMEOUT, dropped=dropped)
        if value is not None:  # a refused request, or a failed stream (replaced before the next call)
            return failed(value, response_times=list(self._times), dropped=dropped)
        return Outcome(response_times=list(self._times), dropped=dropped)

    def abort(self) -> None:
        self._aborted = True  # set before the waiter is read: see call()
        waiter = self._waiter
        if waiter is not None:
            waiter.set(InferenceServerError("the load was stopped", failure=STOPPED))
        self._replace()

    def close(self) -> None:
        self._replace()
