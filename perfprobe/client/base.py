"""What both protocol clients offer, so the load engine can drive either one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from perfprobe.client.model import ModelDescription
from perfprobe.client.tensors import InferInput, InferResult, RequestedOutput

# callback for async and streamed inference: exactly one of result / error is set
ResultCallback = Callable[[InferResult | None, Exception | None], None]


@dataclass(frozen=True)
class RequestOptions:
    """Per-request settings of the protocol (all optional)."""

    request_id: str = ""
    model_version: str = ""
    sequence_id: int | str = 0
    sequence_start: bool = False
    sequence_end: bool = False
    priority: int = 0
    timeout_us: int | None = None
    parameters: dict[str, bool | int | float | str] = field(default_factory=dict)

    def protocol_parameters(self) -> dict[str, bool | int | float | str]:
        """The request-level parameters the server reads, merged with custom ones."""
        params: dict[str, bool | int | float | str] = dict(self.parameters)
        if self.sequence_id:
            params["sequence_id"] = self.sequence_id
            params["sequence_start"] = self.sequence_start
            params["sequence_end"] = self.sequence_end
        if self.priority:
            params["priority"] = self.priority
        if self.timeout_us is not None:
            params["timeout"] = self.timeout_us
        return params


def retry_while_in_use(call: Callable[[], None], attempts: int = 50, pause_s: float = 0.02) -> None:
    """Run an unregister call, retrying while the server still holds the region.

    Triton drops its reference to a region when it frees the response, which can be a moment
    after the client already has the result; unregistering then fails with "in use".
    """
    import time

    from perfprobe.client.errors import InferenceServerError

    for attempt in range(attempts):
        try:
            call()
            return
        except InferenceServerError as exc:
            if "in use" not in exc.message or attempt == attempts - 1:
                raise
            time.sleep(pause_s)


class LoadConnection(Protocol):
    """What a blocking load worker sends on: one connection it keeps for all its requests."""

    def send_raw(self, request: Any) -> Any:
        """Send a prepared request; the undecoded response, or ``InferenceServerError``."""

    def decode_raw(self, raw: Any) -> InferResult:
        """Decode what ``send_raw`` returned (apart, so a load loop can time it as Client Recv)."""

    @property
    def last_send_ns(self) -> int:
        """How long writing the last request took (perf_analyzer's Client Send); 0 when unknown."""

    @property
    def last_resent(self) -> bool:
        """Whether the last request went out twice (a stale kept-alive socket)."""

    def close(self) -> None: ...


class StreamHandle(Protocol):
    """A bidirectional stream of requests whose responses go to the callback it was opened with."""

    def send(self, request: Any) -> None: ...

    def close(self, timeout_s: float | None = None) -> None: ...

    def cancel(self) -> None: ...


class InferenceClient(ABC):
    """The operations of the KServe v2 protocol plus Triton's extensions.

    The load path uses ``build_request`` once per data item, then ``dedicated`` connections
    (blocking workers), ``send_raw_future`` (workers that must not block: gRPC under greenlets,
    ``--mode async``) or ``start_stream`` (``--mode stream``), and ``decode_raw``. ``cooperative``
    says whether this client's blocking calls yield to other greenlets (geventhttpclient's do;
    grpcio's block the thread), which decides how greenlet workers drive it.
    """

    protocol: str = ""
    cooperative: bool = False
    supports_streams: bool = False
    supports_asyncio: bool = False  # has ``aio_connection``: unary calls and streams on an asyncio loop

    @abstractmethod
    def is_server_live(self) -> bool: ...

    @abstractmethod
    def is_server_ready(self) -> bool: ...

    @abstractmethod
    def is_model_ready(self, model_name: str, model_version: str = "") -> bool: ...

    @abstractmethod
    def server_metadata(self) -> dict[str, Any]: ...

    @abstractmethod
    def model_metadata(self, model_name: str, model_version: str = "") -> dict[str, Any]: ...

    @abstractmethod
    def model_config(self, model_name: str, model_version: str = "") -> dict[str, Any]: ...

    def describe_model(self, model_name: str, model_version: str = "") -> ModelDescription:
        """Metadata and configuration decoded into one typed description."""
        return ModelDescription.from_dicts(
            self.model_metadata(model_name, model_version), self.model_config(model_name, model_version)
        )

    @abstractmethod
    def inference_statistics(self, model_name: str = "", model_version: str = "") -> dict[str, Any]: ...

    @abstractmethod
    def repository_index(self, ready_only: bool = False) -> list[dict[str, Any]]: ...

    @abstractmethod
    def load_model(self, model_name: str, config: str | None = None) -> None: ...

    @abstractmethod
    def unload_model(self, model_name: str, unload_dependents: bool = False) -> None: ...

    @abstractmethod
    def register_system_shared_memory(self, name: str, key: str, byte_size: int, offset: int = 0) -> None: ...

    @abstractmethod
    def unregister_system_shared_memory(self, name: str) -> None: ...

    @abstractmethod
    def system_shared_memory_status(self, name: str = "") -> dict[str, dict[str, Any]]: ...

    @abstractmethod
    def register_cuda_shared_memory(self, name: str, raw_handle: bytes, device_id: int, byte_size: int) -> None: ...

    @abstractmethod
    def unregister_cuda_shared_memory(self, name: str) -> None: ...

    @abstractmethod
    def cuda_shared_memory_status(self, name: str = "") -> dict[str, dict[str, Any]]: ...

    @abstractmethod
    def trace_settings(self, model_name: str = "", settings: dict[str, Any] | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def log_settings(self, settings: dict[str, Any] | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def build_request(
        self,
        model_name: str,
        inputs: list[InferInput],
        outputs: list[RequestedOutput] | None = None,
        options: RequestOptions | None = None,
        *,
        binary_inputs: bool = True,
    ) -> Any:
        """Encode a request once; the result can be sent many times by ``send``.

        ``binary_inputs`` False: HTTP puts the input tensors in the JSON header as values (FP16 and
        BF16, which JSON cannot carry, stay binary); gRPC, whose tensors are always bytes, refuses it.
        """

    def with_parameters(self, request: Any, parameters: dict[str, bool | int | float | str]) -> Any:
        """A request made by ``build_request`` with request-level parameters added, tensors not re-encoded."""
        raise NotImplementedError(f"{self.protocol} cannot add parameters to a built request")

    @abstractmethod
    def send(self, request: Any) -> InferResult:
        """Send a request made by ``build_request`` and wait for its result."""

    @abstractmethod
    def send_raw(self, request: Any) -> Any:
        """Send a request made by ``build_request``; the undecoded response (see ``decode_raw``)."""

    @abstractmethod
    def decode_raw(self, raw: Any) -> InferResult:
        """Decode what ``send_raw`` returned."""

    @abstractmethod
    def dedicated(self, blocking: bool = False) -> LoadConnection:
        """A connection one worker keeps; ``blocking``: a plain socket for a native thread's own use."""

    def wire_connection(self, cooperative: bool = False) -> LoadConnection | None:
        """A worker's own connection that bypasses the client's library (None: there is none)."""
        return None

    def wire_stream(self, cooperative: bool = False) -> Any:
        """A worker's own bidirectional stream that bypasses the client's library (None: there is none)."""
        return None

    def send_raw_future(self, request: Any) -> Any:
        """A future (``add_done_callback``, ``result``, ``cancel``) of the undecoded response."""
        raise NotImplementedError(f"{self.protocol} has no futures for raw requests")

    def start_stream(self, callback: ResultCallback, stream_timeout_s: float | None = None) -> StreamHandle:
        """Open a bidirectional stream whose responses (and errors) go to ``callback``."""
        raise NotImplementedError(f"{self.protocol} has no bidirectional streams")

    def aio_connection(self) -> Any:
        """A connection of the running asyncio loop: ``await infer(payload)``, ``open_stream()``, ``close()``."""
        raise NotImplementedError(f"{self.protocol} has no asyncio connection")

    @abstractmethod
    def send_async(self, request: Any, callback: ResultCallback) -> Any:
        """Send without waiting; ``callback`` runs once with the result or the error."""

    def infer(
        self,
        model_name: str,
        inputs: list[InferInput],
        outputs: list[RequestedOutput] | None = None,
        options: RequestOptions | None = None,
    ) -> InferResult:
        """Build and send one request, waiting for its result."""
        return self.send(self.build_request(model_name, inputs, outputs, options))

    def async_infer(
        self,
        model_name: str,
        inputs: list[InferInput],
        callback: ResultCallback,
        outputs: list[RequestedOutput] | None = None,
        options: RequestOptions | None = None,
    ) -> Any:
        """Build and send one request without waiting for it."""
        return self.send_async(self.build_request(model_name, inputs, outputs, options), callback)

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> InferenceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
