"""KServe v2 over HTTP/REST, on geventhttpclient's keep-alive connection pool.

Tensors go as the binary tensor extension by default: the JSON header comes first and
its byte length is sent in ``Inference-Header-Content-Length``; the raw tensor bytes
follow in input order. geventhttpclient objects belong to the thread that made them, so
use one ``HttpClient`` per thread (greenlets of one thread may share one).
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import gevent
from geventhttpclient import HTTPClient
from geventhttpclient.connectionpool import ConnectionPool, SSLConnectionPool

from perfprobe.client import datatypes, sse
from perfprobe.client.abilities import absent_call
from perfprobe.client.base import InferenceClient, RequestOptions, ResultCallback, retry_while_in_use
from perfprobe.client.compression import check_algorithm, compress, decompressed_answer
from perfprobe.client.errors import (
    BAD_EVENT,
    ERROR_EVENT,
    RESET,
    TIMEOUT,
    TRUNCATED,
    UNREACHABLE,
    InferenceServerError,
)
from perfprobe.client.http_wire import (
    PlainSocketPool,
    TruncatedAnswer,
    WireConnection,
    WireError,
    closed_before_answer,
    encode_request,
)
from perfprobe.client.tensors import InferInput, InferResult, OutputTensor, RequestedOutput
from perfprobe.errors import UsageError

HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass(frozen=True)
class HttpRequest:
    """An encoded inference request, ready to be sent any number of times."""

    uri: str
    body: bytes
    headers: dict[str, str]
    model_name: str
    wire: bytes  # the whole HTTP/1.1 request, as sent
    json_header: dict[str, Any] = field(default_factory=dict, repr=False)  # kept to re-encode with parameters
    binary: tuple[bytes, ...] = field(default=(), repr=False)


class HttpClient(InferenceClient):
    """A synchronous (and greenlet-async) client for one server's HTTP endpoint."""

    protocol = "http"

    def __init__(
        self,
        url: str = "localhost:8000",
        *,
        concurrency: int = 1,
        timeout_s: float = 60.0,
        connect_timeout_s: float | None = None,
        headers: dict[str, str] | None = None,
        request_compression: str | None = None,
        response_compression: str | None = None,
        ssl: bool = False,
        ssl_ca_file: str | None = None,
        ssl_cert_file: str | None = None,
        ssl_key_file: str | None = None,
        insecure: bool = False,
    ) -> None:
        connection_timeout = timeout_s if connect_timeout_s is None else connect_timeout_s
        network_timeout = timeout_s
        for algorithm in (request_compression, response_compression):
            check_algorithm(algorithm)
        if "://" in url:
            scheme, _, url = url.partition("://")
            ssl = ssl or scheme == "https"
        host, _, port = url.rstrip("/").partition(":")
        ssl_options: dict[str, Any] = {}
        if ssl_ca_file:
            ssl_options["ca_certs"] = ssl_ca_file
        if ssl_cert_file:
            ssl_options["certfile"] = ssl_cert_file
        if ssl_key_file:
            ssl_options["keyfile"] = ssl_key_file
        self.url = url
        self._pool = HTTPClient(
            host or "localhost",
            port=int(port) if port else (443 if ssl else 80),
            concurrency=max(1, concurrency),
            connection_timeout=connection_timeout,
            network_timeout=network_timeout,
            ssl=ssl,
            ssl_options=ssl_options or None,
            insecure=insecure,
        )
        real_host, real_port = host or "localhost", int(port) if port else (443 if ssl else 80)
        self._host_header = f"{real_host}:{real_port}"
        pool_options = {
            "size": max(1, concurrency),
            "connection_timeout": connection_timeout,
            "network_timeout": network_timeout,
        }
        if ssl:
            self._wire_pool: ConnectionPool = SSLConnectionPool(
                real_host,
                real_port,
                real_host,
                real_port,
                insecure=insecure,
                ssl_options=ssl_options or None,
                **pool_options,
            )
        else:
            self._wire_pool = ConnectionPool(real_host, real_port, real_host, real_port, **pool_options)
        self._ssl, self._ssl_ca_file, self._insecure = ssl, ssl_ca_file, insecure
        self._ssl_cert_file, self._ssl_key_file = ssl_cert_file, ssl_key_file  # a thread worker's own socket too
        self._connection_timeout, self._network_timeout = connection_timeout, network_timeout
        self._headers = dict(headers or {})
        self._request_compression = request_compression
        self._response_compression = response_compression

    # ---- plumbing ------------------------------------------------------------

    def _request(
        self, method: str, uri: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, Any, bytes]:
        merged = {**self._headers, **(headers or {})}
        try:
            response = self._pool.request(method, uri, body=body, headers=merged)
            payload = response.read()
        except (OSError, gevent.Timeout) as exc:
            raise _no_answer(self.url, exc) from exc
        except http.client.HTTPException as exc:  # bytes that are no HTTP/1.1 answer: another protocol's port
            if _ended_early(exc):  # or an HTTP/1.1 answer the connection cut short
                raise _no_answer(self.url, TruncatedAnswer(str(exc))) from None
            raise _not_http(self.url, exc) from None
        encoding = response.get("content-encoding")
        if encoding:
            payload = decompressed_answer(payload, str(encoding))
        return response.status_code, response, payload

    def _json(self, method: str, uri: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else b""
        status, _, payload = self._request(method, uri, data)
        if status != 200:
            raise _error(status, payload)
        return json.loads(payload) if payload else {}

    def _status_ok(self, uri: str) -> bool:
        status, _, _ = self._request("GET", uri)
        return status == 200

    @staticmethod
    def _model_path(model_name: str, model_version: str = "") -> str:
        path = f"/v2/models/{quote(model_name, safe='')}"
        return f"{path}/versions/{quote(model_version, safe='')}" if model_version else path

    # ---- health, metadata, configuration ------------------------------------------

    def is_server_live(self) -> bool:
        return self._status_ok("/v2/health/live")

    def is_server_ready(self) -> bool:
        return self._status_ok("/v2/health/ready")

    def is_model_ready(self, model_name: str, model_version: str = "") -> bool:
        return self._status_ok(self._model_path(model_name, model_version) + "/ready")

    def server_metadata(self) -> dict[str, Any]:
        return self._json("GET", "/v2")

    def model_metadata(self, model_name: str, model_version: str = "") -> dict[str, Any]:
        return self._json("GET", self._model_path(model_name, model_version))

    def model_config(self, model_name: str, model_version: str = "") -> dict[str, Any]:
        return self._json("GET", self._model_path(model_name, model_version) + "/config")

    def inference_statistics(self, model_name: str = "", model_version: str = "") -> dict[str, Any]:
        path = self._model_path(model_name, model_version) if model_name else "/v2/models"
        return self._json("GET", path + "/stats")

    # ---- model repository ---------------------------------------------------------

    def repository_index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        return self._json("POST", "/v2/repository/index", {"ready": ready_only})

    def model_names(self) -> list[str]:
        """The repository index's models; KServe's ModelServer, which has no index, lists them at ``GET /v2/models``."""
        try:
            return super().model_names()
        except InferenceServerError as exc:
            if not absent_call(exc):
                raise
        listed = self._json("GET", "/v2/models").get("models") or []
        return sorted(str(item.get("name") if isinstance(item, dict) else item) for item in listed)

    def load_model(self, model_name: str, config: str | None = None) -> None:
        body: dict[str, Any] = {"parameters": {"config": config}} if config else {}
        self._json("POST", f"/v2/repository/models/{quote(model_name, safe='')}/load", body)

    def unload_model(self, model_name: str, unload_dependents: bool = False) -> None:
        body = {"parameters": {"unload_dependents": unload_dependents}}
        self._json("POST", f"/v2/repository/models/{quote(model_name, safe='')}/unload", body)

    # ---- shared memory ----------------------------------------------------------------

    def register_system_shared_memory(self, name: str, key: str, byte_size: int, offset: int = 0) -> None:
        body = {"key": key, "offset": offset, "byte_size": byte_size}
        self._json("POST", f"/v2/systemsharedmemory/region/{quote(name, safe='')}/register", body)

    def unregister_system_shared_memory(self, name: str) -> None:
        if not name:
            raise ValueError("refusing to unregister every region: name the region to unregister")
        retry_while_in_use(
            lambda: self._json("POST", f"/v2/systemsharedmemory/region/{quote(name, safe='')}/unregister")
        )

    def system_shared_memory_status(self, name: str = "") -> dict[str, dict[str, Any]]:
        path = (
            f"/v2/systemsharedmemory/region/{quote(name, safe='')}/status" if name else "/v2/systemsharedmemory/status"
        )
        return {item["name"]: item for item in self._json("GET", path)}

    def register_cuda_shared_memory(self, name: str, raw_handle: bytes, device_id: int, byte_size: int) -> None:
        import base64

        body = {
            "raw_handle": {"b64": base64.b64encode(raw_handle).decode()},
            "device_id": device_id,
            "byte_size": byte_size,
        }
        self._json("POST", f"/v2/cudasharedmemory/region/{quote(name, safe='')}/register", body)

    def unregister_cuda_shared_memory(self, name: str) -> None:
        if not name:
            raise ValueError("refusing to unregister every region: name the region to unregister")
        retry_while_in_use(lambda: self._json("POST", f"/v2/cudasharedmemory/region/{quote(name, safe='')}/unregister"))

    def cuda_shared_memory_status(self, name: str = "") -> dict[str, dict[str, Any]]:
        path = f"/v2/cudasharedmemory/region/{quote(name, safe='')}/status" if name else "/v2/cudasharedmemory/status"
        return {item["name"]: item for item in self._json("GET", path)}

    # ---- trace and log settings -----------------------------------------------------------

    def trace_settings(self, model_name: str = "", settings: dict[str, Any] | None = None) -> dict[str, Any]:
        path = (self._model_path(model_name) if model_name else "/v2") + "/trace/setting"
        if settings is None:
            return self._json("GET", path)
        return self._json("POST", path, settings)

    def log_settings(self, settings: dict[str, Any] | None = None) -> dict[str, Any]:
        if settings is None:
            return self._json("GET", "/v2/logging")
        return self._json("POST", "/v2/logging", settings)

    # ---- inference -----------------------------------------------------------------------

    def build_request(
        self,
        model_name: str,
        inputs: list[InferInput],
        outputs: list[RequestedOutput] | None = None,
        options: RequestOptions | None = None,
        *,
        binary_inputs: bool = True,
    ) -> HttpRequest:
        options = options or RequestOptions()
        header: dict[str, Any] = {}
        if options.request_id:
            header["id"] = options.request_id
        parameters = options.protocol_parameters()
        if parameters:
            header["parameters"] = parameters
        tensor_input, binary = _encode_inputs(inputs, binary_inputs)
        header["inputs"] = tensor_input
        if outputs:
            header["outputs"] = [_encode_output(out) for out in outputs]
        else:
            header.setdefault("parameters", {})["binary_data_output"] = True
        uri = self._model_path(model_name, options.model_version) + "/infer"
        return self._assemble(uri, model_name, header, tuple(binary))

    def with_parameters(self, request: HttpRequest, parameters: dict[str, bool | int | float | str]) -> HttpRequest:
        """The same request with request-level parameters added (a sequence's id and flags).

        Only the small JSON header is encoded again; the binary tensor data is reused as it is.
        """
        header = {**request.json_header, "parameters": {**request.json_header.get("parameters", {}), **parameters}}
        return self._assemble(request.uri, request.model_name, header, request.binary)

    def build_generate_request(
        self, model_name: str, fields: dict[str, Any], *, stream: bool, model_version: str = ""
    ) -> HttpRequest:
        """A request to Triton's generate extension: ``fields`` as one JSON object (inputs by name, the
        rest parameters), to ``generate`` (one answer) or ``generate_stream`` (server-sent events)."""
        uri = self._model_path(model_name, model_version) + ("/generate_stream" if stream else "/generate")
        return self._assemble(uri, model_name, fields, ())

    def with_fields(self, request: HttpRequest, fields: dict[str, Any]) -> HttpRequest:
        """A generate request with more top-level fields (the generate extension's parameters are fields)."""
        return self._assemble(request.uri, request.model_name, {**request.json_header, **fields}, ())

    def _assemble(self, uri: str, model_name: str, header: dict[str, Any], binary: tuple[bytes, ...]) -> HttpRequest:
        """The wire form of a request: JSON header, binary tensors, HTTP head (compressed when asked)."""
        json_part = json.dumps(header, separators=(",", ":")).encode()
        # JSON alone is application/json (MLServer refuses it as anything else); with tensors after it, bytes
        headers = {"Content-Type": "application/octet-stream" if binary else "application/json"}
        body = json_part
        if binary:
            body = b"".join([json_part, *binary])
            headers[HEADER_LENGTH] = str(len(json_part))
        if self._request_compression:
            body = compress(body, self._request_compression)
            headers["Content-Encoding"] = self._request_compression
        if self._response_compression:
            headers["Accept-Encoding"] = self._response_compression
        wire = encode_request("POST", uri, self._host_header, {**self._headers, **headers}, body)
        return HttpRequest(uri, body, headers, model_name, wire, header, binary)

    def send_raw(self, request: HttpRequest) -> tuple[bytes, int | None]:
        """Send and return the undecoded response (body, JSON header length); raises on errors."""
        connection = WireConnection(self._wire_pool)
        try:
            return self._exchange(connection, request)
        finally:
            connection.close()

    def dedicated(self, blocking: bool = False) -> HttpConnection:
        """A connection one worker keeps for all its requests (no pool round trip per request).

        ``blocking`` gives a plain stdlib socket instead of a gevent one: right for a native
        thread that owns the connection, where an event loop would only add overhead.
        """
        if not blocking:
            return HttpConnection(self, WireConnection(self._wire_pool))
        host, port = self._host_header.rsplit(":", 1)
        context = None
        if self._ssl:
            import ssl as ssl_module

            context = ssl_module.create_default_context(cafile=self._ssl_ca_file)
            if self._ssl_cert_file:  # a server that asks for the client's certificate gets it here too
                context.load_cert_chain(self._ssl_cert_file, self._ssl_key_file)
            if self._insecure:
                context.check_hostname = False
                context.verify_mode = ssl_module.CERT_NONE
        pool = PlainSocketPool(host, int(port), self._connection_timeout, self._network_timeout, context)
        return HttpConnection(self, WireConnection(pool), pool)

    def _exchange(self, connection: WireConnection, request: HttpRequest) -> tuple[bytes, int | None]:
        try:
            status, headers, payload = connection.exchange(request.wire)
        except (OSError, WireError, gevent.Timeout) as exc:
            raise _no_answer(self.url, exc) from exc
        encoding = headers.get("content-encoding")
        if encoding:
            payload = decompressed_answer(payload, encoding)
        if status != 200:
            raise _error(status, payload)
        header_length = headers.get(HEADER_LENGTH.lower())
        return payload, int(header_length) if header_length else None

    @staticmethod
    def decode_raw(raw: tuple[bytes, int | None]) -> InferResult:
        """Decode what ``send_raw`` returned (kept apart so a load loop can time it)."""
        return _decode_result(*raw)

    def send(self, request: HttpRequest) -> InferResult:
        return _decode_result(*self.send_raw(request))

    def send_async(self, request: HttpRequest, callback: ResultCallback) -> gevent.Greenlet:
        """Send on a greenlet; the caller must yield to gevent's hub (join, sleep) for it to run."""

        def run() -> None:
            try:
                result = self.send(request)
            except Exception as exc:  # handed to the callback, never lost
                callback(None, exc)
            else:
                callback(result, None)

        return gevent.spawn(run)

    def close(self) -> None:
        self._pool.close()
        self._wire_pool.close()


class HttpConnection:
    """A worker's own kept-alive connection to the server, for the inference hot path."""

    def __init__(self, client: HttpClient, connection: WireConnection, own_pool: Any = None) -> None:
        self._client = client
        self._connection = connection
        self._own_pool = own_pool

    def send_raw(self, request: HttpRequest) -> tuple[bytes, int | None]:
        return self._client._exchange(self._connection, request)

    @property
    def last_send_ns(self) -> int:
        """How long writing the last request onto the socket took (perf_analyzer's "Client Send")."""
        return self._connection.last_send_ns

    @property
    def last_resent(self) -> bool:
        """The last request went out twice: its kept-alive socket turned out to be closed."""
        return self._connection.last_resent

    decode_raw = staticmethod(HttpClient.decode_raw)

    def generate(self, request: HttpRequest) -> dict[str, Any]:
        """A ``generate`` answer, decoded; an ``error`` in it (Triton answers some with status 200) raises."""
        payload, _ = self.send_raw(request)
        return _generated(payload.decode("utf-8", "replace"))

    def generate_events(self, request: HttpRequest) -> Iterator[tuple[dict[str, Any], sse.Event]]:
        """A ``generate_stream`` answer's events as they arrive, each decoded.

        Raises ``InferenceServerError`` for a refused request (with the server's reason, also when it
        comes as an event), an ``error`` event (``ERROR_EVENT``), an event that is not a JSON object or
        a stream that ends inside one (``BAD_EVENT``), and a connection that ends early (``TRUNCATED``).
        """
        url = self._client.url
        try:
            status, _, pieces = self._connection.open_stream(request.wire)
            if status != 200:
                raise _error(status, _event_data(b"".join(pieces)))
            for event in sse.events(pieces):
                yield _generated(event.data, event.name), event
        except (OSError, WireError, gevent.Timeout) as exc:
            raise _no_answer(url, exc) from exc
        except ValueError as exc:  # the stream ended inside an event
            raise InferenceServerError(str(exc), failure=BAD_EVENT) from None

    def close(self) -> None:
        self._connection.close()
        if self._own_pool is not None:
            self._own_pool.close()


def _encode_inputs(inputs: list[InferInput], binary_inputs: bool) -> tuple[list[dict[str, Any]], list[Any]]:
    tensors: list[dict[str, Any]] = []
    binary: list[Any] = []
    for item in inputs:
        entry: dict[str, Any] = {"name": item.name, "shape": item.shape, "datatype": item.datatype}
        if item.shared_memory is not None:
            entry["parameters"] = {
                "shared_memory_region": item.shared_memory.region,
                "shared_memory_byte_size": item.shared_memory.byte_size,
            }
            if item.shared_memory.offset:
                entry["parameters"]["shared_memory_offset"] = item.shared_memory.offset
        elif binary_inputs or item.datatype in datatypes.BINARY_ONLY:
            entry["parameters"] = {"binary_data_size": len(item.raw)}
            binary.append(item.raw)
        else:
            entry["data"] = datatypes.json_values(item.array, item.datatype)
        tensors.append(entry)
    return tensors, binary


def _encode_output(out: RequestedOutput) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if out.shared_memory is not None:
        params["shared_memory_region"] = out.shared_memory.region
        params["shared_memory_byte_size"] = out.shared_memory.byte_size
        if out.shared_memory.offset:
            params["shared_memory_offset"] = out.shared_memory.offset
    else:
        params["binary_data"] = out.binary
    if out.class_count:
        params["classification"] = out.class_count
    return {"name": out.name, "parameters": params}


def _decode_result(payload: bytes, header_length: int | None) -> InferResult:
    view = memoryview(payload)
    header = json.loads(payload[:header_length] if header_length is not None else payload)
    offset = header_length or 0
    outputs: list[OutputTensor] = []
    buffers: dict[str, Any] = {}
    for item in header.get("outputs") or []:
        params = item.get("parameters") or {}
        meta = OutputTensor(item["name"], item["datatype"], list(item["shape"]), params)
        outputs.append(meta)
        size = params.get("binary_data_size")
        if size is not None:
            buffers[meta.name] = view[offset : offset + size]
            offset += size
        elif "data" in item:
            buffers[meta.name] = item["data"]
    return InferResult(
        model_name=header.get("model_name", ""),
        model_version=header.get("model_version") or "",
        request_id=header.get("id") or "",
        outputs=outputs,
        buffers=buffers,
        parameters=header.get("parameters") or {},
        raw_response=payload,
    )


def _generated(data: str, event_name: str = "") -> dict[str, Any]:
    """One generate answer or event as a JSON object; the server's ``error`` raised as such."""
    try:
        answer = json.loads(data)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise InferenceServerError(f"not a JSON object: {_one_line(data, 80)}", failure=BAD_EVENT)
    if "error" in answer or event_name == "error":
        raise InferenceServerError(_one_line(str(answer.get("error") or answer)), failure=ERROR_EVENT)
    return answer


def _event_data(payload: bytes) -> bytes:
    """A refused stream's body: its first event's data where it is an event stream."""
    text = payload.strip()
    return text[5:].strip().split(b"\n", 1)[0] if text.startswith(b"data:") else payload


def _no_answer(url: str, exc: BaseException) -> InferenceServerError:
    """A request that got no HTTP answer: timed out, or the connection failed."""
    timed_out = isinstance(exc, (TimeoutError, gevent.Timeout)) or "timed out" in str(exc)
    if timed_out:
        return InferenceServerError(f"no answer from {url} in time: {exc}", failure=TIMEOUT)
    if isinstance(exc, TruncatedAnswer):
        return InferenceServerError(f"{url} cut its answer short: {exc}", failure=TRUNCATED)
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)) or closed_before_answer(exc):
        return InferenceServerError(f"{url} ended the connection before answering: {exc}", failure=RESET)
    return InferenceServerError(f"cannot reach {url}: {exc}", failure=UNREACHABLE)


def _ended_early(exc: BaseException) -> bool:
    """geventhttpclient's parser met the end of the connection inside an answer (not bytes of another protocol)."""
    text = str(exc)
    return "Incomplete response" in text or "EOF" in text


def _not_http(url: str, exc: BaseException) -> UsageError:
    """The port answered, but not in HTTP/1.1: most often a gRPC port (HTTP/2) given to ``-i http``."""
    return UsageError(
        f"{url} did not answer in HTTP/1.1 ({type(exc).__name__}): that port speaks another protocol; "
        "if it is a gRPC port (HTTP/2), use -i grpc"
    )


def _error(status: int, payload: bytes) -> InferenceServerError:
    """The server's own reason (KServe v2's ``{"error": ...}``, a FastAPI server's ``{"detail": ...}``);
    one line of anything else."""
    try:
        answer = json.loads(payload)
        message = answer.get("error") or _detail(answer.get("detail"))
    except (ValueError, AttributeError):
        message = _one_line(payload.decode("utf-8", "replace"))
        if message:
            message = f"not a KServe v2 answer: {message}"
    return InferenceServerError(message or f"HTTP status {status}", http_status=status)


def _detail(detail: Any) -> str:
    """A FastAPI ``detail``: text, or a list of validation errors (their first ``msg``)."""
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        detail = detail[0].get("msg", detail[0])
    return _one_line(str(detail)) if detail else ""


def _one_line(text: str, limit: int = 160) -> str:
    """The first readable line of a body (HTML tags dropped), cut to ``limit`` characters."""
    for line in re.sub(r"<[^>]*>", "\n", text).splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""
