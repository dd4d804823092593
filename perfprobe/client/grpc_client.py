"""KServe v2 over gRPC (Triton's ``inference.GRPCInferenceService``), on grpcio.

Inference requests are serialised once by ``build_request`` and sent as bytes through
calls whose request serializer is the identity, so a load loop resending one request
pays no protobuf encoding per send.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from perfprobe.client import protoconv
from perfprobe.client._proto import grpc_service_pb2 as pb
from perfprobe.client._proto import grpc_service_pb2_grpc as pb_grpc
from perfprobe.client.base import InferenceClient, RequestOptions, ResultCallback, retry_while_in_use
from perfprobe.client.compression import check_algorithm
from perfprobe.client.errors import UNREACHABLE, InferenceServerError
from perfprobe.client.tensors import InferInput, InferResult, OutputTensor, RequestedOutput
from perfprobe.client.tls import TlsFiles, tls_url
from perfprobe.errors import UsageError

if TYPE_CHECKING:
    from perfprobe.client.grpc_aio import AioGrpcConnection
    from perfprobe.client.grpc_wire import GrpcWireConnection, GrpcWireStream

INT32_MAX = 2**31 - 1
_SERVICE = "/inference.GRPCInferenceService/"
_COMPRESSION = {
    None: grpc.Compression.NoCompression,
    "gzip": grpc.Compression.Gzip,
    "deflate": grpc.Compression.Deflate,
}


@dataclass(frozen=True)
class GrpcRequest:
    """A serialised ``ModelInferRequest``, ready to be sent any number of times."""

    payload: bytes
    model_name: str


_REQUEST_ID_TAG = b"\x1a"  # ModelInferRequest.id: field 3, length-delimited


def with_request_id(request: GrpcRequest, request_id: str) -> GrpcRequest:
    """The same serialised request with its ``id`` set, without encoding it again.

    Protobuf keeps the last value of a singular field that appears twice, so appending
    field 3 to the bytes overrides any id the request was built with.
    """
    encoded = request_id.encode()
    length = len(encoded)
    varint = bytearray()
    while length > 0x7F:
        varint.append((length & 0x7F) | 0x80)
        length >>= 7
    varint.append(length)
    return GrpcRequest(request.payload + _REQUEST_ID_TAG + bytes(varint) + encoded, request.model_name)


def rpc_error(exc: grpc.RpcError) -> InferenceServerError:
    """The ``InferenceServerError`` for a failed gRPC call."""
    return _error(exc)


def _error(exc: grpc.RpcError) -> InferenceServerError:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return InferenceServerError(details or str(code), grpc_code=code.name if code else None, debug=exc)


def _speaks_http1(address: str, timeout_s: float = 2.0) -> bool:
    """Whether ``host:port`` answers a plain HTTP/1.1 request (a KServe v2 HTTP port given to gRPC)."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as conn:
            conn.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: perfprobe\r\nConnection: close\r\n\r\n")
            return conn.recv(16).startswith(b"HTTP/1.")
    except (OSError, ValueError):
        return False


def set_parameter(target: Any, value: bool | int | float | str) -> None:
    """Store a Python value in an ``InferParameter`` map entry, by its type."""
    if isinstance(value, bool):
        target.bool_param = value
    elif isinstance(value, int):
        target.int64_param = value
    elif isinstance(value, float):
        target.double_param = value
    else:
        target.string_param = str(value)


def decode_response(response: pb.ModelInferResponse) -> InferResult:
    """Turn a ``ModelInferResponse`` into an ``InferResult`` (raw outputs by position)."""
    outputs: list[OutputTensor] = []
    buffers: dict[str, Any] = {}
    raw = response.raw_output_contents
    raw_index = 0
    for item in response.outputs:
        params = {key: protoconv.parameter_value(value) for key, value in item.parameters.items()}
        meta = OutputTensor(item.name, item.datatype, list(item.shape), params)
        outputs.append(meta)
        if "shared_memory_region" in params:
            if len(raw) == len(response.outputs):
                raw_index += 1
            continue
        if raw_index < len(raw):
            buffer = raw[raw_index]
            raw_index += 1
            # an empty entry for a non-empty tensor: its data went to a shared-memory region
            if buffer or not all(meta.shape):
                buffers[meta.name] = buffer
        elif item.HasField("contents"):
            buffers[meta.name] = _typed_contents(item.contents, item.datatype)
    parameters = {key: protoconv.parameter_value(value) for key, value in response.parameters.items()}
    return InferResult(
        model_name=response.model_name,
        model_version=response.model_version,
        request_id=response.id,
        outputs=outputs,
        buffers=buffers,
        parameters=parameters,
        raw_response=response,
    )


def _typed_contents(contents: pb.InferTensorContents, datatype: str) -> list[Any]:
    for field_name in (
        "bool_contents",
        "int_contents",
        "int64_contents",
        "uint_contents",
        "uint64_contents",
        "fp32_contents",
        "fp64_contents",
        "bytes_contents",
    ):
        values = getattr(contents, field_name)
        if len(values):
            return list(values)
    return []


class StreamSession:
    """One bidirectional ``ModelStreamInfer`` call: send requests, receive results on a thread.

    Responses arrive in the callback in the order the server sends them; a decoupled
    model may answer one request with any number of responses (see ``InferResult.is_final``).
    """

    _CLOSE = object()

    def __init__(
        self, call_factory: Any, callback: ResultCallback, metadata: list[tuple[str, str]], timeout_s: float | None
    ) -> None:
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._callback = callback
        self._ended_by_us = False  # close() or cancel(): the end of the stream is no failure
        self._responses = call_factory(self._request_iterator(), metadata=metadata, timeout=timeout_s)
        self._reader = threading.Thread(target=self._read, name="perfprobe-stream-reader", daemon=True)
        self._reader.start()

    def _request_iterator(self) -> Iterator[bytes]:
        while True:
            item = self._requests.get()
            if item is self._CLOSE:
                return
            yield item

    def _read(self) -> None:
        try:
            for message in self._responses:
                if message.error_message:
                    self._callback(None, InferenceServerError(message.error_message, grpc_code="STREAM_ERROR"))
                else:
                    self._callback(decode_response(message.infer_response), None)
        except grpc.RpcError as exc:
            if not self._ended_by_us:
                ended = _error(exc)
                if exc.code() == grpc.StatusCode.CANCELLED:  # not by us: the connection went away
                    ended = InferenceServerError(f"the stream was cancelled: {ended.message}", failure=UNREACHABLE)
                self._callback(None, ended)
            return
        if not self._ended_by_us:  # the server ended the stream while we still wait for answers
            self._callback(None, InferenceServerError("the server ended the stream", failure=UNREACHABLE))

    def send(self, request: GrpcRequest) -> None:
        self._requests.put(request.payload)

    def close(self, timeout_s: float | None = None) -> None:
        """Half-close the stream and wait until the server has sent everything."""
        self._ended_by_us = True
        self._requests.put(self._CLOSE)
        self._reader.join(timeout_s)
        if self._reader.is_alive():
            self._responses.cancel()
            self._reader.join()

    def cancel(self) -> None:
        self._ended_by_us = True
        self._requests.put(self._CLOSE)  # lets grpc's request-consuming thread end too
        self._responses.cancel()
        self._reader.join()


class GrpcClient(InferenceClient):
    """A client for one server's gRPC endpoint: sync, future-based async, and streams."""

    protocol = "grpc"

    def __init__(
        self,
        url: str = "localhost:8001",
        *,
        headers: dict[str, str] | None = None,
        request_compression: str | None = None,
        timeout_s: float | None = None,
        ssl: bool = False,
        ssl_ca_file: str | None = None,
        ssl_cert_file: str | None = None,
        ssl_key_file: str | None = None,
        keepalive_time_ms: int | None = None,
        keepalive_timeout_ms: int = 20000,
        keepalive_permit_without_calls: bool = False,
        max_message_bytes: int = INT32_MAX,
    ) -> None:
        check_algorithm(request_compression)
        ssl = ssl or tls_url(url)
        if "://" in url:
            url = url.partition("://")[2]
        self.url = url.rstrip("/")
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            # a measuring client must see every failure, never a transparent retry
            ("grpc.enable_retries", 0),
        ]
        if keepalive_time_ms is not None:
            options += [
                ("grpc.keepalive_time_ms", keepalive_time_ms),
                ("grpc.keepalive_timeout_ms", keepalive_timeout_ms),
                ("grpc.keepalive_permit_without_calls", int(keepalive_permit_without_calls)),
            ]
        self._credentials: grpc.ChannelCredentials | None = None
        if ssl:
            self._credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(ssl_ca_file),
                private_key=_read(ssl_key_file),
                certificate_chain=_read(ssl_cert_file),
            )
            self._channel = grpc.secure_channel(self.url, self._credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(self.url, options=options)
        self._channel_options = options
        self._wire_compression = request_compression
        self._tls = TlsFiles(ssl_ca_file, ssl_cert_file, ssl_key_file) if ssl else None
        self._wire_tls: dict[bool, Any] = {}  # SSL contexts for wire connections, by cooperative
        self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)
        self._metadata = list((headers or {}).items())
        self._compression = _COMPRESSION[request_compression]
        self._timeout_s = timeout_s
        self._infer_raw = self._channel.unary_unary(
            _SERVICE + "ModelInfer", request_serializer=None, response_deserializer=None
        )
        self._stream = self._channel.stream_stream(
            _SERVICE + "ModelStreamInfer",
            request_serializer=None,
            response_deserializer=pb.ModelStreamInferResponse.FromString,
        )

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self._stub, method)(request, metadata=self._metadata, timeout=self._timeout_s)
        except grpc.RpcError as exc:
            error = _error(exc)
            if error.grpc_code == "UNAVAILABLE" and "refused" not in error.message and _speaks_http1(self.url):
                raise UsageError(
                    f"{self.url} answers in HTTP/1.1, not gRPC: if it is the server's HTTP port, use -i http"
                ) from None
            raise error from None

    # ---- health, metadata, configuration ------------------------------------------

    def is_server_live(self) -> bool:
        return self._call("ServerLive", pb.ServerLiveRequest()).live

    def is_server_ready(self) -> bool:
        return self._call("ServerReady", pb.ServerReadyRequest()).ready

    def is_model_ready(self, model_name: str, model_version: str = "") -> bool:
        try:
            return self._call("ModelReady", pb.ModelReadyRequest(name=model_name, version=model_version)).ready
        except InferenceServerError as exc:
            if exc.grpc_code in ("NOT_FOUND", "UNAVAILABLE", "INVALID_ARGUMENT"):
                return False
            raise

    def server_metadata(self) -> dict[str, Any]:
        return protoconv.to_dict(self._call("ServerMetadata", pb.ServerMetadataRequest()))

    def model_metadata(self, model_name: str, model_version: str = "") -> dict[str, Any]:
        request = pb.ModelMetadataRequest(name=model_name, version=model_version)
        return protoconv.to_dict(self._call("ModelMetadata", request))

    def model_config(self, model_name: str, model_version: str = "") -> dict[str, Any]:
        request = pb.ModelConfigRequest(name=model_name, version=model_version)
        return protoconv.to_dict(self._call("ModelConfig", request).config)

    def inference_statistics(self, model_name: str = "", model_version: str = "") -> dict[str, Any]:
        request = pb.ModelStatisticsRequest(name=model_name, version=model_version)
        return protoconv.to_dict(self._call("ModelStatistics", request))

    # ---- model repository ---------------------------------------------------------

    def repository_index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        response = self._call("RepositoryIndex", pb.RepositoryIndexRequest(ready=ready_only))
        return [protoconv.to_dict(model) for model in response.models]

    def load_model(self, model_name: str, config: str | None = None) -> None:
        request = pb.RepositoryModelLoadRequest(model_name=model_name)
        if config:
            request.parameters["config"].string_param = config
        self._call("RepositoryModelLoad", request)

    def unload_model(self, model_name: str, unload_dependents: bool = False) -> None:
        request = pb.RepositoryModelUnloadRequest(model_name=model_name)
        request.parameters["unload_dependents"].bool_param = unload_dependents
        self._call("RepositoryModelUnload", request)

    # ---- shared memory ----------------------------------------------------------------

    def register_system_shared_memory(self, name: str, key: str, byte_size: int, offset: int = 0) -> None:
        request = pb.SystemSharedMemoryRegisterRequest(name=name, key=key, offset=offset, byte_size=byte_size)
        self._call("SystemSharedMemoryRegister", request)

    def unregister_system_shared_memory(self, name: str) -> None:
        if not name:
            raise ValueError("refusing to unregister every region: name the region to unregister")
        retry_while_in_use(
            lambda: self._call("SystemSharedMemoryUnregister", pb.SystemSharedMemoryUnregisterRequest(name=name))
        )

    def system_shared_memory_status(self, name: str = "") -> dict[str, dict[str, Any]]:
        response = self._call("SystemSharedMemoryStatus", pb.SystemSharedMemoryStatusRequest(name=name))
        return {key: protoconv.to_dict(region) for key, region in response.regions.items()}

    def register_cuda_shared_memory(self, name: str, raw_handle: bytes, device_id: int, byte_size: int) -> None:
        request = pb.CudaSharedMemoryRegisterRequest(
            name=name, raw_handle=raw_handle, device_id=device_id, byte_size=byte_size
        )
        self._call("CudaSharedMemoryRegister", request)

    def unregister_cuda_shared_memory(self, name: str) -> None:
        if not name:
            raise ValueError("refusing to unregister every region: name the region to unregister")
        retry_while_in_use(
            lambda: self._call("CudaSharedMemoryUnregister", pb.CudaSharedMemoryUnregisterRequest(name=name))
        )

    def cuda_shared_memory_status(self, name: str = "") -> dict[str, dict[str, Any]]:
        response = self._call("CudaSharedMemoryStatus", pb.CudaSharedMemoryStatusRequest(name=name))
        return {key: protoconv.to_dict(region) for key, region in response.regions.items()}

    # ---- trace and log settings -----------------------------------------------------------

    def trace_settings(self, model_name: str = "", settings: dict[str, Any] | None = None) -> dict[str, Any]:
        request = pb.TraceSettingRequest(model_name=model_name)
        for key, value in (settings or {}).items():
            values = value if isinstance(value, list) else [value]
            if value is None:
                request.settings[key].SetInParent()  # empty value: reset to the global setting
            else:
                request.settings[key].value.extend(str(v) for v in values)
        response = self._call("TraceSetting", request)
        # the same shape as Triton's HTTP answer: trace_level a list, the others single strings
        return {
            key: list(item.value) if key == "trace_level" or len(item.value) != 1 else item.value[0]
            for key, item in response.settings.items()
        }

    def log_settings(self, settings: dict[str, Any] | None = None) -> dict[str, Any]:
        request = pb.LogSettingsRequest()
        for key, value in (settings or {}).items():
            entry = request.settings[key]
            if isinstance(value, bool):
                entry.bool_param = value
            elif isinstance(value, int):
                entry.uint32_param = value
            else:
                entry.string_param = str(value)
        response = self._call("LogSettings", request)
        return {key: protoconv.parameter_value(item) for key, item in response.settings.items()}

    # ---- inference -----------------------------------------------------------------------

    def build_request(
        self,
        model_name: str,
        inputs: list[InferInput],
        outputs: list[RequestedOutput] | None = None,
        options: RequestOptions | None = None,
        *,
        binary_inputs: bool = True,
    ) -> GrpcRequest:
        if not binary_inputs:
            raise ValueError("gRPC carries tensors as bytes: there is no JSON tensor format")
        return GrpcRequest(build_infer_request(model_name, inputs, outputs, options).SerializeToString(), model_name)

    @staticmethod
    def with_parameters(request: GrpcRequest, parameters: dict[str, bool | int | float | str]) -> GrpcRequest:
        """The same request with request-level parameters added (a sequence's id and flags).

        Serialised protobuf messages merge when concatenated, and a map entry that comes later
        replaces an earlier one of the same key: the tensors are not encoded again.
        """
        extra = pb.ModelInferRequest()
        for key, value in parameters.items():
            set_parameter(extra.parameters[key], value)
        return GrpcRequest(request.payload + extra.SerializeToString(), request.model_name)

    def send_raw(self, request: GrpcRequest) -> bytes:
        """Send and return the serialised ``ModelInferResponse``; raises on errors."""
        try:
            return self._infer_raw(
                request.payload, metadata=self._metadata, timeout=self._timeout_s, compression=self._compression
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None

    @staticmethod
    def decode_raw(raw: bytes) -> InferResult:
        """Parse and decode what ``send_raw`` returned (kept apart so a load loop can time it)."""
        return decode_response(pb.ModelInferResponse.FromString(raw))

    def send_raw_future(self, request: GrpcRequest) -> grpc.Future:
        """A gRPC future whose result is the serialised response."""
        return self._infer_raw.future(
            request.payload, metadata=self._metadata, timeout=self._timeout_s, compression=self._compression
        )

    def send(self, request: GrpcRequest) -> InferResult:
        return self.decode_raw(self.send_raw(request))

    def aio_connection(self) -> AioGrpcConnection:
        """This client's settings on a ``grpc.aio`` channel of the running event loop (call it there)."""
        from perfprobe.client.grpc_aio import AioGrpcConnection

        return AioGrpcConnection(
            self.url, self._channel_options, self._credentials, self._metadata, self._compression, self._timeout_s
        )

    def dedicated(self, blocking: bool = False) -> GrpcConnection:
        """The shared channel, seen as one worker's connection (gRPC multiplexes one channel)."""
        return GrpcConnection(self)

    def wire_connection(self, cooperative: bool = False) -> GrpcWireConnection:
        """A worker's own HTTP/2 connection for ``ModelInfer`` without grpcio (``grpc_wire``)."""
        from perfprobe.client.grpc_wire import GrpcWireConnection

        return GrpcWireConnection(
            self._address(),
            _SERVICE + "ModelInfer",
            self._metadata,
            self._timeout_s,
            self.decode_raw,
            cooperative,
            tls=self._wire_context(cooperative),
            compression=self._wire_compression,
        )

    def wire_stream(self, cooperative: bool = False) -> GrpcWireStream:
        """A worker's own HTTP/2 connection for one ``ModelStreamInfer`` stream at a time."""
        from perfprobe.client.grpc_wire import GrpcWireStream

        return GrpcWireStream(
            self._address(),
            _SERVICE + "ModelStreamInfer",
            self._metadata,
            cooperative,
            tls=self._wire_context(cooperative),
            compression=self._wire_compression,
        )

    def _wire_context(self, cooperative: bool) -> Any:
        """The SSL context wire connections share (None without TLS): made once, its files read once."""
        if self._tls is None:
            return None
        if cooperative not in self._wire_tls:
            from perfprobe.client.tls import tls_context

            self._wire_tls[cooperative] = tls_context(self._tls, ["h2"], cooperative)
        return self._wire_tls[cooperative]

    def _address(self) -> tuple[str, int]:
        host, _, port = self.url.rpartition(":")
        return host.strip("[]"), int(port)

    def send_async(self, request: GrpcRequest, callback: ResultCallback) -> grpc.Future:
        """Send through a gRPC future; ``callback`` runs on grpc's thread when it completes."""
        future = self.send_raw_future(request)

        def done(completed: grpc.Future) -> None:
            try:
                response = completed.result()
            except grpc.RpcError as exc:
                callback(None, _error(exc))
            except Exception as exc:  # cancelled futures and the like
                callback(None, InferenceServerError(str(exc) or type(exc).__name__))
            else:
                callback(self.decode_raw(response), None)

        future.add_done_callback(done)
        return future

    def start_stream(self, callback: ResultCallback, stream_timeout_s: float | None = None) -> StreamSession:
        """Open a ``ModelStreamInfer`` stream whose results go to ``callback``."""
        return StreamSession(self._stream, callback, self._metadata, stream_timeout_s)

    def health_check(self, service: str = "") -> str:
        """The standard gRPC health service's answer (``SERVING``, ``NOT_SERVING``, ...)."""
        from perfprobe.client._proto import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=self._timeout_s)
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def close(self) -> None:
        self._channel.close()


class GrpcConnection:
    """One worker's view of the client's channel: calls are multiplexed, so there is nothing to own."""

    last_send_ns = 0  # grpcio does not say when the request left; Client Send is not measured
    last_resent = False  # a unary call is never sent twice (retries are off)

    def __init__(self, client: GrpcClient) -> None:
        self.send_raw = client.send_raw
        self.decode_raw = client.decode_raw

    def close(self) -> None:
        """The channel belongs to the client."""


def build_infer_request(
    model_name: str,
    inputs: list[InferInput],
    outputs: list[RequestedOutput] | None = None,
    options: RequestOptions | None = None,
) -> pb.ModelInferRequest:
    """The ``ModelInferRequest`` message: tensors as ``raw_input_contents``, one per input in order."""
    options = options or RequestOptions()
    request = pb.ModelInferRequest(model_name=model_name, model_version=options.model_version, id=options.request_id)
    for key, value in options.protocol_parameters().items():
        set_parameter(request.parameters[key], value)
    for item in inputs:
        tensor = request.inputs.add(name=item.name, datatype=item.datatype, shape=item.shape)
        if item.shared_memory is not None:
            tensor.parameters["shared_memory_region"].string_param = item.shared_memory.region
            tensor.parameters["shared_memory_byte_size"].int64_param = item.shared_memory.byte_size
            if item.shared_memory.offset:
                tensor.parameters["shared_memory_offset"].int64_param = item.shared_memory.offset
        else:
            request.raw_input_contents.append(bytes(item.raw))
    for out in outputs or []:
        wanted = request.outputs.add(name=out.name)
        if out.class_count:
            wanted.parameters["classification"].int64_param = out.class_count
        if out.shared_memory is not None:
            wanted.parameters["shared_memory_region"].string_param = out.shared_memory.region
            wanted.parameters["shared_memory_byte_size"].int64_param = out.shared_memory.byte_size
            if out.shared_memory.offset:
                wanted.parameters["shared_memory_offset"].int64_param = out.shared_memory.offset
    return request


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as handle:
        return handle.read()
