"""What every transport shares: a send's outcome and its response events, the sender a worker
owns, and the small ``Transport`` contract a protocol module fills in.

A transport is one module per protocol or endpoint (``kserve_http``, ``kserve_grpc``). It says
what it can do (``modes``, ``streaming_modes``, ``worker_kinds``, ``connections``,
``json_tensors``) and does two things for a load: turn a data item into a prepared request, and
make each worker's ``Sender`` for the worker kind and mode the run asked for. The load engine
never asks a protocol's name; it reads these declarations. Whatever a transport does not
declare, it does not support, and the run says so in one line.

A sender's ``call`` sends one prepared request and returns an ``Outcome``. On thread and greenlet
workers it blocks; on the asyncio runtime it is a coroutine function. Every completion belongs
to its own request: a late answer to a request given up on is dropped and counted, never taken
for the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from perfprobe.client import InferenceClient, InferenceServerError
from perfprobe.client.base import LoadConnection, RequestOptions
from perfprobe.client.errors import ANSWERED, TIMEOUT
from perfprobe.client.tensors import InferInput, RequestedOutput

if TYPE_CHECKING:
    from perfprobe.client.model import ModelDescription

STOPPED = "STOPPED"  # a request cut short because the run was stopping (server gone, Ctrl-C)
REASON_LIMIT = 200  # characters of a server's error message kept per distinct reason
TIMED_OUT = object()  # what ``Waiter.get`` returns when nothing came in time
MODES = ("sync", "async", "stream")
_now = time.perf_counter_ns


@dataclass(frozen=True, slots=True)
class Response:
    """One response of a streamed request, as it arrived: the event every per-response figure is read from.

    ``tokens`` is None where the transport does not count them (a tensor stream).
    """

    arrival_ns: int  # perf_counter_ns when it was read
    byte_size: int = 0  # its size on the wire, where the transport knows it (0: not known)
    tokens: int | None = None


@dataclass
class Outcome:
    """What became of one sent request.

    ``responses`` holds the responses of a streamed request that carried outputs, in order of
    arrival (a unary request's one answer is its end, ``recv``, and is not listed).
    """

    error: str | None = None
    send_ns: int = 0  # writing the request (perf_analyzer's Client Send); 0 when unknown
    recv_ns: int = 0  # decoding the answer (Client Recv), when outputs are decoded
    responses: list[Response] = field(default_factory=list)
    reason: str = ""  # the server's message for a refused request
    resent: bool = False  # went out twice on HTTP (a stale kept-alive socket)
    dropped: int = 0  # late answers to earlier, timed-out requests, discarded
    output_tokens: int | None = None  # a generated answer's tokens, where the transport counted them


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
        answered = exc.http_status is not None or exc.grpc_code is not None or exc.failure in ANSWERED
        if answered and code != TIMEOUT and not exc.unreachable:
            reason = " ".join(exc.message.split())[:REASON_LIMIT]
    else:
        reason = str(exc)[:REASON_LIMIT]
    return Outcome(error=code, reason=reason, **extra)


class Waiter:
    """A one-shot hand-over of a value from any thread to the worker waiting for it.

    One waiter serves one request: a completion that arrives after its request was given up
    on lands in a waiter nobody reads, never in the next request's.
    """

    def set(self, value: Any) -> None:
        raise NotImplementedError

    def get(self, timeout_s: float | None = None) -> Any:
        """The value, or ``TIMED_OUT``; never raises for the timeout."""
        raise NotImplementedError


class WorkerRuntime(Protocol):
    """What a sender needs of the worker kind it runs on (``perfprobe.load.runtime`` provides it)."""

    kind: str

    def waiter(self) -> Waiter: ...


class Sender:
    """One worker's way of sending a prepared request and waiting for its outcome.

    ``call`` blocks on thread and greenlet workers; a sender for the asyncio runtime makes it
    (and ``close``) coroutine functions.
    """

    def call(self, request: Any) -> Outcome:
        raise NotImplementedError

    def close(self) -> Any:
        """Release what this sender holds (its connection, its stream); the shared client is its owner's."""

    def abort(self) -> None:
        """From another thread, while stopping: end a wait that no answer will end (a dead stream)."""


class BlockingSender(Sender):
    """A synchronous call on the worker's own connection (HTTP on any kind, gRPC on threads or the own HTTP/2).

    Timeouts are the connection's own (socket timeout, gRPC deadline): a timed-out socket is
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


@dataclass(frozen=True)
class SendSettings:
    """How a load wants to send: what the user asked for, before the transport decides."""

    mode: str
    worker_kind: str  # thread | greenlet | asyncio, as asked (or the transport's default)
    request_timeout_s: float
    decode_outputs: bool = False
    connection: str = "h2"  # which of the transport's ``connections`` carries the load, where it has several
    tokenizer: str | None = None  # a local tokenizer.json that counts a generated answer's tokens


@dataclass
class SendPlan:
    """A transport's answer: the worker kind it runs on, each worker's sender, and what the run should say."""

    worker_kind: str
    make_sender: Callable[[WorkerRuntime], Sender]  # called in the worker, on its thread or event loop
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TensorFormats:
    """How tensors travel in a prepared request: as binary data (the default) or as JSON values."""

    json_inputs: bool = False
    json_outputs: bool = False


class Transport:
    """One protocol or endpoint, as a load drives it; every ability absent unless declared.

    Subclasses set the declarations and implement ``client`` and ``send_plan``; ``prepare`` has
    the KServe v2 tensor request as its default.
    """

    protocol = ""  # the name ``-i`` takes
    endpoint = "infer"  # the name ``--endpoint`` takes: ``infer`` is the protocol's own tensor inference
    title = ""  # the protocol as people write it, for messages
    default_url = ""
    modes: tuple[str, ...] = ("sync",)
    streaming_modes: tuple[str, ...] = ()  # modes whose requests may have many responses (decoupled models)
    worker_kinds: tuple[str, ...] = ("thread", "greenlet")
    connections: tuple[str, ...] = ()  # choices of what carries the load (``--grpc-transport``); () none
    json_tensors = False  # tensors may travel as JSON values (``--input-tensor-format json``)

    @property
    def display_name(self) -> str:
        """The protocol as messages name it."""
        return self.title or self.protocol

    def client(self, url: str, *, concurrency: int = 1, **options: Any) -> InferenceClient:
        """The protocol's client at ``url``: the control calls, and the connection the load's senders use."""
        raise NotImplementedError(f"{self.protocol} has no client")

    def default_worker_kind(self, mode: str, connection: str, in_flight_per_process: int | None) -> str:
        """The cheapest worker kind that keeps up (``None``: the load per process is not known in advance)."""
        return "greenlet" if "greenlet" in self.worker_kinds else self.worker_kinds[0]

    def needs_greenlets(self, mode: str, worker_kind: str) -> bool:
        """Whether this load drives greenlets (and so wants gevent's patching before it starts)."""
        return worker_kind == "greenlet"

    def check_mode(self, mode: str, decoupled: bool = False) -> None:
        """Refuse a mode this transport lacks, or a decoupled model on a mode that cannot stream."""
        from perfprobe.errors import UsageError

        if mode not in MODES:
            raise UsageError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        from perfprobe.transport import transports_with_mode

        if mode not in self.modes:
            others = transports_with_mode(mode)
            needs = " or ".join(other.display_name for other in others) or "another protocol"
            hint = f": add -i {others[0].protocol}" if others else ""
            raise UsageError(f"--mode {mode} needs {needs} ({self.display_name} does not offer it){hint}")
        if decoupled and mode not in self.streaming_modes:
            if self.streaming_modes:
                how = f"--mode {self.streaming_modes[0]}"
            else:
                streaming = transports_with_mode("stream")
                how = f"-i {streaming[0].protocol} --mode stream" if streaming else "a transport that streams"
            raise UsageError(f"the model is decoupled: it can only be measured with {how}")

    def check_model(self, model: ModelDescription) -> None:
        """Refuse a model this transport cannot drive (a ``UsageError`` saying why); every model by default."""

    def check_worker_kind(self, kind: str) -> None:
        """Refuse a worker kind this transport cannot drive, naming those that can."""
        if kind in self.worker_kinds:
            return
        from perfprobe.errors import UsageError
        from perfprobe.transport import transports

        others = [other for other in transports() if kind in other.worker_kinds]
        drives = " and ".join(other.display_name for other in others) or "no protocol"
        kinds = " or ".join(sorted(self.worker_kinds))
        raise UsageError(f"--workers {kind} drives {drives} only; {self.protocol} runs on {kinds} workers")

    def prepare(
        self,
        client: InferenceClient,
        model: ModelDescription,
        inputs: dict[str, np.ndarray],
        outputs: list[RequestedOutput],
        options: RequestOptions | None,
        formats: TensorFormats,
    ) -> Any:
        """One data item (wire-typed arrays by input name) as a request ready to send many times."""
        tensors = [
            InferInput(name, array, model.input(name).datatype, shape=list(array.shape))
            for name, array in inputs.items()
        ]
        return client.build_request(model.name, tensors, outputs, options, binary_inputs=not formats.json_inputs)

    def with_parameters(self, client: InferenceClient, request: Any, parameters: dict[str, Any]) -> Any:
        """A prepared request carrying request-level parameters too (``--request-parameter``, a sequence's id)."""
        return client.with_parameters(request, parameters)

    def send_plan(self, client: InferenceClient, settings: SendSettings) -> SendPlan:
        """The worker kind and per-worker senders for ``settings`` (a ``UsageError`` for what it cannot do)."""
        raise NotImplementedError(f"{self.protocol} cannot send a load")
