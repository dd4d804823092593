"""What both protocol clients offer, so the load engine can drive either one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from perfprobe.client.abilities import absent_call
from perfprobe.client.errors import NOT_SUPPORTED, InferenceServerError
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

    Only the core protocol is abstract (health, metadata, inference); every extension (model
    configuration, statistics, repository, shared memory, trace, logging) and every load-path
    call has a default that raises ``not_supported``, so a client for another server or endpoint
    implements what it has and nothing else. How a load sends on a client (which of its
    load-path calls, on which worker kind) is its transport's decision (``perfprobe.transport``).
    """

    protocol: str = ""

    def not_supported(self, what: str) -> InferenceServerError:
        """The error for a call this client's server or protocol does not offer."""
        return InferenceServerError(f"{self.protocol}: {what} is not supported here", failure=NOT_SUPPORTED)

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

    def model_config(self, model_name: str, model_version: str = "") -> dict[str, Any]:
        raise self.not_supported("model configuration (Triton's model-configuration extension)")

    def describe_model(self, model_name: str, model_version: str = "") -> ModelDescription:
        """Metadata and configuration decoded into one typed description.

        A model the server does not have fails with the models it does have, where it can list them.
        A server without the model-configuration extension gives a description from metadata alone.
        """
        try:
            metadata = self.model_metadata(model_name, model_version)
        except InferenceServerError as exc:
            if exc.http_status not in (400, 404) and exc.grpc_code not in ("NOT_FOUND", "INVALID_ARGUMENT"):
                raise
            raise self._naming_known_models(exc) from None
        try:
            config: dict[str, Any] | None = self.model_config(model_name, model_version)
        except InferenceServerError as exc:
            if not absent_call(exc):
                raise
            config = None
        return ModelDescription.from_dicts(metadata, config)

    def _naming_known_models(self, exc: InferenceServerError) -> InferenceServerError:
        """``exc`` with the server's models added to its message (unchanged when the server cannot list them)."""
        try:
            names = self.model_names()
        except InferenceServerError:
            return exc
        known = ", ".join(names) if names else "none"
        return InferenceServerError(
            f"{exc.message}; the server has: {known}",
            http_status=exc.http_status,
            grpc_code=exc.grpc_code,
            debug=exc.debug,
            failure=exc.failure,
        )

    def model_names(self) -> list[str]:
        """The names of the models the server has (from its repository index)."""
        return sorted({str(entry.get("name")) for entry in self.repository_index() if entry.get("name")})

    def inference_statistics(self, model_name: str = "", model_version: str = "") -> dict[str, Any]:
        raise self.not_supported("inference statistics (Triton's statistics extension)")

    def repository_index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        raise self.not_supported("the model repository index (repository extension)")

    def load_model(self, model_name: str, config: str | None = None) -> None:
        raise self.not_supported("loading models (repository extension)")

    def unload_model(self, model_name: str, unload_dependents: bool = False) -> None:
        raise self.not_supported("unloading models (repository extension)")

    def register_system_shared_memory(self, name: str, key: str, byte_size: int, offset: int = 0) -> None:
        raise self.not_supported("system shared memory")

    def unregister_system_shared_memory(self, name: str) -> None:
        raise self.not_supported("system shared memory")

    def system_shared_memory_status(self, name: str = "") -> dict[str, dict[str, Any]]:
        raise self.not_supported("system shared memory")

    def register_cuda_shared_memory(self, name: str, raw_handle: bytes, device_id: int, byte_size: int) -> None:
        raise self.not_supported("CUDA shared memory")

    def unregister_cuda_shared_memory(self, name: str) -> None:
        raise self.not_supported("CUDA shared memory")

    def cuda_shared_memory_status(self, name: str = "") -> dict[str, dict[str, Any]]:
        raise self.not_supported("CUDA shared memory")

    def trace_settings(self, model_name: str = "", settings: dict[str, Any] | None = None) -> dict[str, Any]:
        raise self.not_supported("trace settings (trace extension)")

    def log_settings(self, settings: dict[str, Any] | None = None) -> dict[str, Any]:
        raise self.not_supported("log settings (logging extension)")

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

    def send_raw(self, request: Any) -> Any:
        """Send a request made by ``build_request``; the undecoded response (see ``decode_raw``)."""
        raise self.not_supported("undecoded sends")

    def decode_raw(self, raw: Any) -> InferResult:
        """Decode what ``send_raw`` returned."""
        raise self.not_supported("undecoded sends")

    def dedicated(self, blocking: bool = False) -> LoadConnection:
        """A connection one worker keeps; ``blocking``: a plain socket for a native thread's own use."""
        raise self.not_supported("per-worker connections")

    def send_raw_future(self, request: Any) -> Any:
        """A future (``add_done_callback``, ``result``, ``cancel``) of the undecoded response."""
        raise self.not_supported("futures for undecoded sends")

    def start_stream(self, callback: ResultCallback, stream_timeout_s: float | None = None) -> StreamHandle:
        """Open a bidirectional stream whose responses (and errors) go to ``callback``."""
        raise self.not_supported("bidirectional streams")

    def aio_connection(self) -> Any:
        """A connection of the running asyncio loop: ``await infer(payload)``, ``open_stream()``, ``close()``."""
        raise self.not_supported("asyncio connections")

    def send_async(self, request: Any, callback: ResultCallback) -> Any:
        """Send without waiting; ``callback`` runs once with the result or the error."""
        raise self.not_supported("sends without waiting")

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
