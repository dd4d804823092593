"""KServe v2 inference over gRPC (``inference.GRPCInferenceService``): unary ``ModelInfer`` and
bidirectional ``ModelStreamInfer``, on perfprobe's own HTTP/2 connections or on grpcio.

What carries the load (``connections``, ``--grpc-transport``):
- ``h2`` (the default): each worker on an HTTP/2 connection of its own that perfprobe speaks
  itself (``perfprobe.client.grpc_wire``), waiting on its socket: about a third of grpcio's
  client CPU per request and no cross-thread hand-off per answer, which is what decides the round
  trip at one or two requests in flight. Unary calls and streams alike; greenlets by default,
  since one thread with many cooperative sockets beats many GIL-bound threads from eight in
  flight on.
- ``grpcio``: unary calls as blocking calls on threads, or as futures that wake the waiting
  greenlet (``--mode async``, greenlet workers); streams as grpcio's bidirectional calls.
- asyncio workers (``--workers asyncio``): coroutines on one ``grpc.aio`` event loop, unary
  calls and streams.

Stream requests each carry their own id and are complete at their final response (decoupled
models are asked for an empty final one); a stream whose request timed out or that broke is
replaced, and whatever still arrives on it is dropped and counted.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any, cast

from perfprobe.client import InferenceClient, InferenceServerError, make_client
from perfprobe.client.datatypes import deserialize_bytes
from perfprobe.client.errors import TIMEOUT, UNREACHABLE
from perfprobe.client.tokens import TokenCount, token_counter
from perfprobe.transport import register
from perfprobe.transport.base import (
    STOPPED,
    TIMED_OUT,
    BlockingSender,
    Outcome,
    Response,
    Sender,
    SendPlan,
    SendSettings,
    Transport,
    WorkerRuntime,
    failed,
)

if TYPE_CHECKING:
    from perfprobe.client.grpc_client import GrpcClient

_now = time.perf_counter_ns
_ABORTED = object()
FUTURE_GRACE_S = 1.0  # a future's own gRPC deadline normally fires first; this is the backstop


class KServeGrpc(Transport):
    protocol = "grpc"
    title = "gRPC"
    default_url = "localhost:8001"
    modes = ("sync", "async", "stream")
    streaming_modes = ("stream",)
    worker_kinds = ("greenlet", "thread", "asyncio")
    connections = ("h2", "grpcio")

    def client(self, url: str, *, concurrency: int = 1, **options: Any) -> InferenceClient:
        return make_client("grpc", url, concurrency=concurrency, **options)

    def default_worker_kind(self, mode: str, connection: str, in_flight_per_process: int | None) -> str:
        if connection == "h2":
            return "greenlet"
        return "asyncio" if mode == "stream" else "thread"

    def send_plan(self, client: InferenceClient, settings: SendSettings) -> SendPlan:
        self.check_mode(settings.mode)
        self.check_worker_kind(settings.worker_kind)
        mode, kind, timeout_s, decode = (
            settings.mode,
            settings.worker_kind,
            settings.request_timeout_s,
            settings.decode_outputs,
        )
        count = token_counter(settings.tokenizer) if mode == "stream" else None
        if kind == "asyncio":
            return _coroutine_plan(client, mode, timeout_s, decode, count)
        if settings.connection == "h2":
            return _own_connection_plan(cast("GrpcClient", client), mode, kind, timeout_s, decode, count)
        if mode == "stream":
            return SendPlan(kind, lambda runtime: StreamSender(client, runtime, timeout_s, count))
        if mode == "async" or kind == "greenlet":  # a blocking grpcio call would stall every greenlet
            return SendPlan(kind, lambda runtime: FutureSender(client, runtime, timeout_s, decode))
        return SendPlan(kind, lambda runtime: BlockingSender(client.dedicated(blocking=True), decode=decode))


def _own_connection_plan(
    client: GrpcClient, mode: str, kind: str, timeout_s: float, decode: bool, count: TokenCount | None
) -> SendPlan:
    """Each worker on an HTTP/2 connection of its own, waiting on its socket (a greenlet's through gevent's hub)."""
    cooperative = kind == "greenlet"
    if mode == "stream":
        return SendPlan(kind, lambda runtime: WireStreamSender(client.wire_stream(cooperative), timeout_s, count))
    notes = ["on perfprobe's own HTTP/2 connection, sync and async are the same: each worker waits on its socket"]
    return SendPlan(
        kind,
        lambda runtime: BlockingSender(client.wire_connection(cooperative), decode=decode),
        notes if mode == "async" else [],
    )


def _coroutine_plan(
    client: InferenceClient, mode: str, timeout_s: float, decode: bool, count: TokenCount | None
) -> SendPlan:
    """Coroutines on one event loop: a unary call or a stream request awaited per worker."""
    if mode == "stream":
        return SendPlan("asyncio", lambda runtime: AioStreamSender(client, timeout_s, count))
    notes = (
        ["with asyncio workers, sync and async are the same: each worker awaits its call"] if mode == "async" else []
    )
    return SendPlan("asyncio", lambda runtime: AioUnarySender(client, decode), notes)


class FutureSender(Sender):
    """gRPC from a greenlet (or ``--mode async``): a future whose completion wakes this worker."""

    def __init__(
        self,
        client: InferenceClient,
        runtime: WorkerRuntime,
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


def judge_stream_response(
    message: Any, request_id: str, responses: list[Response], byte_size: int = 0, texts: list[str] | None = None
) -> str | InferenceServerError:
    """What one ``ModelStreamInferResponse`` means for the request awaited (``request_id``).

    The server's refusal of it, ``OTHER_REQUEST``, ``PARTIAL`` or ``FINAL``; the arrival of a
    response that carries outputs is added to ``responses`` (with ``byte_size``, its size on the wire where known),
    and its text to ``texts`` when the run counts tokens with a tokenizer.
    """
    response = message.infer_response
    if message.error_message:
        if response.id and response.id != request_id:
            return OTHER_REQUEST
        return InferenceServerError(message.error_message, grpc_code=_STREAM_REQUEST_ERROR)
    if response.id != request_id:
        return OTHER_REQUEST
    if response.outputs:
        responses.append(Response(_now(), byte_size))
        if texts is not None:
            texts.append(response_text(response))
    final = response.parameters.get("triton_final_response")
    return FINAL if final is None or final.bool_param else PARTIAL


def response_text(response: Any) -> str:
    """The text a ``ModelInferResponse`` carries: its ``text_output`` (else its first BYTES output), decoded."""
    outputs = list(response.outputs)
    chosen = sorted(range(len(outputs)), key=lambda index: outputs[index].name != "text_output")
    for index in chosen:
        if outputs[index].datatype != "BYTES":
            continue
        if index < len(response.raw_output_contents):
            values = deserialize_bytes(response.raw_output_contents[index])
        else:
            values = outputs[index].contents.bytes_contents
        return "".join(bytes(value).decode("utf-8", "replace") for value in values)
    return ""


def _tokens(count: TokenCount | None, texts: list[str] | None) -> int | None:
    """A streamed request's tokens by the tokenizer (None without one: one per response, the engine's count)."""
    return count("".join(texts)) if count is not None and texts is not None else None


class WireStreamSender(Sender):
    """One ``ModelStreamInfer`` stream per worker on perfprobe's own HTTP/2 connection (``grpc_wire``).

    The same rules as the other stream senders: one request in flight, each with its own id,
    complete at its final response; a timeout or a broken stream closes the connection, so
    nothing still on its way can complete a later request.
    """

    _ids = itertools.count()

    def __init__(self, stream: Any, timeout_s: float, count: TokenCount | None = None) -> None:
        from perfprobe.client._proto.grpc_service_pb2 import ModelStreamInferResponse
        from perfprobe.client.grpc_client import with_request_id

        self._count = count
        self._stream = stream  # this worker's own: closed with the sender
        self._parse = ModelStreamInferResponse.FromString
        self._with_id = with_request_id
        self._timeout_s = timeout_s
        self._prefix = f"pw{next(self._ids)}-"
        self._sequence = itertools.count()
        self._dropped = 0

    def call(self, request: Any) -> Outcome:
        request_id = f"{self._prefix}{next(self._sequence)}"
        times: list[Response] = []
        texts: list[str] | None = [] if self._count is not None else None
        try:
            started = _now()
            self._stream.write(self._with_id(request, request_id).payload, self._timeout_s)
            send_ns = _now() - started
            while True:
                raw = self._stream.read()
                if raw is None:
                    ended = InferenceServerError("the server ended the stream", failure=UNREACHABLE)
                    return failed(ended, responses=times, dropped=self._take_dropped())
                verdict = judge_stream_response(self._parse(raw), request_id, times, len(raw), texts)
                if verdict is OTHER_REQUEST:
                    self._dropped += 1
                elif isinstance(verdict, InferenceServerError):
                    return failed(verdict, responses=times, dropped=self._take_dropped())
                elif verdict is FINAL:
                    tokens = _tokens(self._count, texts)
                    return Outcome(send_ns=send_ns, responses=times, dropped=self._take_dropped(), output_tokens=tokens)
        except InferenceServerError as exc:  # a timeout or a failed stream: the connection is closed
            return failed(exc, responses=times, dropped=self._take_dropped())

    def _take_dropped(self) -> int:
        dropped, self._dropped = self._dropped, 0
        return dropped

    def close(self) -> None:
        self._stream.close()


def _result_text(result: Any) -> str:
    """The text a decoded stream response (``InferResult``) carries: ``text_output``, else its first BYTES output."""
    names = sorted((output.name for output in result.outputs if output.datatype == "BYTES"), key="text_output".__ne__)
    values = result.as_numpy(names[0]) if names else None
    return "" if values is None else "".join(bytes(value).decode("utf-8", "replace") for value in values.reshape(-1))


class StreamSender(Sender):
    """One gRPC bidirectional stream per worker, one request in flight on it at a time.

    A request is complete at its final response; for decoupled models perfprobe asks for an
    empty final response so the end is known even after zero responses. Each request carries
    its own id; a stream whose request timed out, or that broke, is closed and replaced, and
    whatever its server still sends is dropped and counted.
    """

    _ids = itertools.count()

    def __init__(
        self, client: InferenceClient, runtime: WorkerRuntime, timeout_s: float, count: TokenCount | None = None
    ) -> None:
        from perfprobe.client.grpc_client import with_request_id

        self._count = count
        self._texts: list[str] = []
        self._client = client
        self._runtime = runtime
        self._timeout_s = timeout_s
        self._with_id = with_request_id
        self._prefix = f"pp{next(self._ids)}-"
        self._sequence = itertools.count()
        self._times: list[Response] = []
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
            self._times.append(Response(_now()))
            if self._count is not None:
                self._texts.append(_result_text(result))
        if result.is_final and waiter is not None:
            waiter.set(None)

    def call(self, request: Any) -> Outcome:
        if self._broken:
            self._replace()
        if self._session is None:
            self._open()
        self._times = []
        self._texts = []
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
            return failed(value, responses=list(self._times), dropped=dropped)
        return Outcome(responses=list(self._times), dropped=dropped, output_tokens=_tokens(self._count, self._texts))

    def abort(self) -> None:
        self._aborted = True  # set before the waiter is read: see call()
        waiter = self._waiter
        if waiter is not None:
            waiter.set(InferenceServerError("the load was stopped", failure=STOPPED))
        self._replace()

    def close(self) -> None:
        self._replace()


class CoroutineSender:
    """What a coroutine worker awaits: ``call`` per request, ``close`` at the end."""

    def __init__(self, client: InferenceClient) -> None:
        self._connection = client.aio_connection()  # made on the running loop: it belongs there
        self._aborted = False

    async def call(self, request: Any) -> Outcome:
        raise NotImplementedError

    def abort(self) -> None:
        """From the controller's thread, while stopping: no new request; the runtime cancels the one awaited."""
        self._aborted = True

    async def close(self) -> None:
        await self._connection.close()


class AioUnarySender(CoroutineSender):
    """One ``ModelInfer`` call at a time per worker; its deadline is the client's request timeout."""

    def __init__(self, client: InferenceClient, decode: bool = False) -> None:
        super().__init__(client)
        self._decode = client.decode_raw if decode else None

    async def call(self, request: Any) -> Outcome:
        if self._aborted:
            return Outcome(error=STOPPED)
        try:
            raw = await self._connection.infer(request.payload)
        except InferenceServerError as exc:
            return failed(exc)
        if self._decode is None:
            return Outcome()
        started = _now()
        try:
            self._decode(raw)
        except Exception as exc:
            return failed(exc)
        return Outcome(recv_ns=_now() - started)


class AioStreamSender(CoroutineSender):
    """One ``ModelStreamInfer`` stream per worker, one request in flight on it at a time.

    A request is complete at its final response (decoupled models are asked for an empty
    final one, so zero responses still end). Responses carrying outputs are timed, for time
    to first response and inter-response gaps.
    """

    _ids = itertools.count()

    def __init__(self, client: InferenceClient, timeout_s: float, count: TokenCount | None = None) -> None:
        from perfprobe.client.grpc_client import with_request_id

        super().__init__(client)
        self._count = count
        self._with_id = with_request_id
        self._timeout_s = timeout_s
        self._prefix = f"pa{next(self._ids)}-"
        self._sequence = itertools.count()
        self._stream: Any = None
        self._dropped = 0

    def _replace(self) -> None:
        """Give up on the stream: whatever it still carries is never read."""
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None

    async def call(self, request: Any) -> Outcome:
        import asyncio

        if self._aborted:
            return Outcome(error=STOPPED)
        if self._stream is None:
            self._stream = self._connection.open_stream()
        request_id = f"{self._prefix}{next(self._sequence)}"
        times: list[Response] = []
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._stream.write(self._with_id(request, request_id).payload)
                return await self._responses(request_id, times)
        except TimeoutError:
            self._replace()
            return self._outcome(TIMEOUT, times)
        except asyncio.CancelledError:  # the runtime cancelled this worker: the run is stopping
            self._stream = None
            return self._outcome(STOPPED, times)
        except InferenceServerError as exc:  # the stream itself failed: a new one for the next request
            self._replace()
            return failed(exc, responses=times, dropped=self._take_dropped())

    async def _responses(self, request_id: str, times: list[Response]) -> Outcome:
        texts: list[str] | None = [] if self._count is not None else None
        while True:
            message = await self._stream.read()
            if message is None:
                self._stream = None
                error = InferenceServerError("the server ended the stream", failure=UNREACHABLE)
                return failed(error, responses=times, dropped=self._take_dropped())
            verdict = judge_stream_response(message, request_id, times, texts=texts)
            if verdict is OTHER_REQUEST:
                self._dropped += 1  # an answer to a request given up on earlier
            elif isinstance(verdict, InferenceServerError):
                return failed(verdict, responses=times, dropped=self._take_dropped())
            elif verdict is FINAL:
                return Outcome(responses=times, dropped=self._take_dropped(), output_tokens=_tokens(self._count, texts))

    def _take_dropped(self) -> int:
        dropped, self._dropped = self._dropped, 0
        return dropped

    def _outcome(self, error: str, times: list[Response]) -> Outcome:
        return Outcome(error=error, responses=times, dropped=self._take_dropped())

    async def close(self) -> None:
        self._replace()
        await super().close()


register(KServeGrpc())
