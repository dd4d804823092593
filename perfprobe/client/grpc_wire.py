"""gRPC unary calls and streams on one HTTP/2 connection of its own, for a load worker that owns it.

grpcio spends 200-500 µs of client CPU per request in its Python layer and hands every answer
across threads; at one or two requests in flight that time is most of a round trip. A load
worker has one request in flight on its own connection, so it needs very little of HTTP/2:
one stream at a time, request headers encoded once (HPACK literals, never indexed),
the server's header blocks decoded with ``hpack``, flow control kept simple by advertising the
largest receive windows and honouring the server's. Facts from RFC 9113 (HTTP/2), RFC 7541
(HPACK) and gRPC's "gRPC over HTTP2" document; TLS through Python's ``ssl`` (ALPN ``h2``).
With compression each request message is compressed as it is sent (as grpcio does), and
compressed answers are taken in any encoding offered.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import grpc
import hpack

from perfprobe.client.compression import ALGORITHMS, compress, decompressed_answer
from perfprobe.client.errors import BAD_RESPONSE, TIMEOUT, UNREACHABLE, InferenceServerError
from perfprobe.client.sockets import send_whole

if TYPE_CHECKING:
    from perfprobe.client.tensors import InferResult

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# frame types
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _PUSH_PROMISE = 0x0, 0x1, 0x3, 0x4, 0x5
_PING, _GOAWAY, _WINDOW_UPDATE, _CONTINUATION = 0x6, 0x7, 0x8, 0x9
_END_STREAM = _ACK = 0x1
_END_HEADERS, _PADDED, _PRIORITY = 0x4, 0x8, 0x20
_SETTING_ENABLE_PUSH, _SETTING_INITIAL_WINDOW, _SETTING_MAX_FRAME = 0x2, 0x4, 0x5
_DEFAULT_WINDOW = 65_535
_DEFAULT_MAX_FRAME = 16_384
_MAX_WINDOW = 2**31 - 1
_REPLENISH_AT = 2**30  # received bytes after which a receive window (connection, stream) is topped up
_LAST_STREAM_ID = 2**31 - 1
_READ_SIZE = 262_144
_NEVER = float("inf")

_GRPC_CODES = {code.value[0]: code.name for code in grpc.StatusCode}
# what a gRPC client reports for a stream the server reset (gRPC over HTTP2, "Errors")
_RST_CODES = {7: "UNAVAILABLE", 8: "CANCELLED", 11: "RESOURCE_EXHAUSTED", 12: "PERMISSION_DENIED"}
# and for an HTTP status without a gRPC status (gRPC's "HTTP to gRPC Status Code Mapping")
_HTTP_CODES = {
    400: "INTERNAL",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "UNIMPLEMENTED",
    429: "UNAVAILABLE",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "UNAVAILABLE",
}


def _frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", stream_id) + payload


def _literal(name: str, value: str) -> bytes:
    """An HPACK literal header field without indexing, new name, no Huffman coding."""
    return b"\x00" + _hpack_string(name.encode()) + _hpack_string(value.encode())


def _hpack_string(data: bytes) -> bytes:
    return _hpack_integer(len(data), 7) + data


def _hpack_integer(value: int, prefix_bits: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((value,))
    out = bytearray((limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def grpc_timeout(timeout_s: float) -> str:
    """The ``grpc-timeout`` header's value: at most eight digits and a unit."""
    milliseconds = max(1, round(timeout_s * 1000))
    if milliseconds < 10**8:
        return f"{milliseconds}m"
    return f"{min(round(timeout_s), 10**8 - 1)}S"


def header_block(
    path: str,
    authority: str,
    metadata: list[tuple[str, str]],
    timeout_s: float | None,
    scheme: str = "http",
    compression: str | None = None,
) -> bytes:
    """The request's HPACK block: the same bytes for every call on a connection."""
    fields = [("te", "trailers"), ("content-type", "application/grpc")]
    if timeout_s is not None:
        fields.append(("grpc-timeout", grpc_timeout(timeout_s)))
    if compression is not None:  # without it no encoding is offered, and the server sends none
        fields += [("grpc-encoding", compression), ("grpc-accept-encoding", ",".join(("identity", *ALGORITHMS)))]
    fields += [(name.lower(), value) for name, value in metadata]
    pseudo = [(":method", "POST"), (":scheme", scheme), (":path", path), (":authority", authority)]
    return b"".join(_literal(name, value) for name, value in (*pseudo, *fields))


class _Stream:
    """What the server said so far on the one HTTP/2 stream in flight."""

    __slots__ = ("body", "ended", "error", "headers", "id", "received", "window")

    def __init__(self, stream_id: int, window: int) -> None:
        self.id = stream_id
        self.body = bytearray()  # DATA not yet taken as messages
        self.headers: dict[str, str] = {}
        self.error: InferenceServerError | None = None
        self.ended = False
        self.window = window  # how much we may still send on it
        self.received = 0  # DATA bytes since its receive window was last topped up


class _Http2:
    """One HTTP/2 connection carrying one gRPC call at a time, for one worker.

    The connection opens on the first call and again after anything that leaves its state in
    doubt (a timeout, a broken socket, a reset, a GOAWAY): an answer that comes late for a
    request given up on is never read as the next one's. ``cooperative`` uses gevent's sockets
    (greenlet workers need them whether or not the process is patched). ``tls``: an SSL context
    (gevent's, for ``cooperative``) that offers ``h2``; the connection is then TLS, as gRPC's is.
    ``compression``: how every message sent is compressed (the header block must say so too).
    """

    def __init__(
        self,
        address: tuple[str, int],
        block: bytes,
        cooperative: bool,
        connect_timeout_s: float,
        tls: Any = None,
        compression: str | None = None,
    ) -> None:
        self._address = address
        self._block = block
        self._compression = compression
        self._connect_timeout_s = connect_timeout_s
        self._cooperative = cooperative
        self._tls = tls
        self._sock: Any = None
        self._buffer = bytearray()
        self._decoder = hpack.Decoder()
        self._next_stream = 1
        self._send_window = _DEFAULT_WINDOW  # the connection's, towards the server
        self._initial_window = _DEFAULT_WINDOW
        self._max_frame = _DEFAULT_MAX_FRAME
        self._received = 0  # DATA bytes since the connection's receive window was last topped up
        self._going_away = False
        self._deadline = _NEVER
        self._stream: _Stream | None = None

    @contextlib.contextmanager
    def _failures(self, timeout_s: float | None) -> Iterator[None]:
        """Any failure as ``InferenceServerError``, the connection closed behind it."""
        try:
            yield
        except InferenceServerError:
            self.close()
            raise
        except (hpack.HPACKError, ValueError, struct.error) as exc:  # frames or headers that make no sense
            self.close()
            raise InferenceServerError(f"not a valid HTTP/2 answer: {exc}", failure=BAD_RESPONSE) from None
        except TimeoutError:
            self.close()
            raise InferenceServerError(f"no answer within {timeout_s:g} s", failure=TIMEOUT) from None
        except OSError as exc:
            self.close()
            message = f"connection to {self._authority()} failed: {exc}"
            raise InferenceServerError(message, failure=UNREACHABLE) from None

    def _open_stream(self) -> _Stream:
        if self._sock is None or self._going_away or self._next_stream > _LAST_STREAM_ID:
            self._connect()
        stream = self._stream = _Stream(self._next_stream, self._initial_window)
        self._next_stream += 2
        return stream

    def _send_message(self, stream: _Stream, payload: bytes, end_stream: bool, with_headers: bool) -> None:
        """One length-prefixed message in DATA frames, within the server's windows and frame size."""
        self._sock.settimeout(max(self._deadline - time.monotonic(), 0.001) if self._deadline != _NEVER else None)
        if self._compression is None:
            message = b"\x00" + struct.pack(">I", len(payload)) + payload
        else:
            packed = compress(payload, self._compression)
            message = b"\x01" + struct.pack(">I", len(packed)) + packed
        out = [self._headers_frames(stream.id)] if with_headers else []
        offset = 0
        while True:
            room = min(self._max_frame, self._send_window, stream.window)
            if room <= 0 and offset < len(message):
                if out:
                    send_whole(self._sock, b"".join(out))
                    out = []
                self._handle(*self._read_frame())  # until the server opens its window
                if stream.ended:
                    return  # it answered (refused) before taking the whole request
                continue
            chunk = message[offset : offset + room]
            offset += len(chunk)
            self._send_window -= len(chunk)
            stream.window -= len(chunk)
            last = offset >= len(message)
            out.append(_frame(_DATA, _END_STREAM if last and end_stream else 0, stream.id, chunk))
            if last:
                break
        send_whole(self._sock, b"".join(out))

    def _headers_frames(self, stream_id: int) -> bytes:
        block = self._block
        if len(block) <= self._max_frame:
            return _frame(_HEADERS, _END_HEADERS, stream_id, block)
        pieces = [block[i : i + self._max_frame] for i in range(0, len(block), self._max_frame)]
        frames = [_frame(_HEADERS, 0, stream_id, pieces[0])]
        frames += [_frame(_CONTINUATION, 0, stream_id, piece) for piece in pieces[1:-1]]
        frames.append(_frame(_CONTINUATION, _END_HEADERS, stream_id, pieces[-1]))
        return b"".join(frames)

    @staticmethod
    def _take_message(stream: _Stream) -> bytes | None:
        """The next whole message received on ``stream``, without its 5-byte prefix; None: not yet."""
        body = stream.body
        if len(body) < 5:
            return None
        length = int.from_bytes(body[1:5], "big")
        if len(body) < 5 + length:
            return None
        compressed = body[0] != 0
        message = bytes(body[5 : 5 + length])
        del body[: 5 + length]
        if not compressed:
            return message
        # the server compresses only in an encoding offered, and names it in grpc-encoding
        return decompressed_answer(message, stream.headers.get("grpc-encoding", "identity"))

    # ---- frames from the server ---------------------------------------------------------------

    def _handle(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        stream = self._stream
        current = stream is not None and stream_id == stream.id
        if kind == _DATA:
            self._account_received(len(payload), stream if current else None)
            if current:
                stream.body += _unpadded(flags, payload)
                if flags & _END_STREAM:  # without trailers: no gRPC status, so a failed call
                    stream.ended = True
                    stream.error = _call_error(stream.headers)
        elif kind == _HEADERS:
            block = self._header_block(flags, _unpadded(flags, payload, priority=True))
            fields = self._decoder.decode(block)
            if current:
                stream.headers.update(fields)
                if flags & _END_STREAM:
                    stream.ended = True
                    stream.error = _call_error(stream.headers)
        elif kind == _SETTINGS:
            if not flags & _ACK:
                self._apply_settings(payload)
                self._sock.sendall(_frame(_SETTINGS, _ACK, 0))
        elif kind == _PING:
            if not flags & _ACK:
                self._sock.sendall(_frame(_PING, _ACK, 0, payload))
        elif kind == _WINDOW_UPDATE:
            increment = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if stream_id == 0:
                self._send_window += increment
            elif current:
                stream.window += increment
        elif kind == _RST_STREAM and current:
            code = int.from_bytes(payload[:4], "big")
            stream.ended = True
            stream.error = InferenceServerError(
                f"the server reset the stream (HTTP/2 error {code})", grpc_code=_RST_CODES.get(code, "INTERNAL")
            )
            self._going_away = True  # its state is in doubt: the next call opens a fresh connection
        elif kind == _GOAWAY:
            self._going_away = True
            last_stream = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if stream is not None and stream.id > last_stream:  # never processed: the server said so
                stream.ended = True
                stream.error = InferenceServerError(
                    "the server closed the connection (GOAWAY)", grpc_code="UNAVAILABLE"
                )
        elif kind == _PUSH_PROMISE:
            raise InferenceServerError("the server pushed, which was refused in SETTINGS", failure=BAD_RESPONSE)

    def _header_block(self, flags: int, fragment: bytes) -> bytes:
        """The whole header block: its fragment, and any CONTINUATION frames that follow."""
        parts = [fragment]
        while not flags & _END_HEADERS:
            kind, flags, _, payload = self._read_frame()
            if kind != _CONTINUATION:
                raise InferenceServerError("a header block broken by another frame", failure=BAD_RESPONSE)
            parts.append(payload)
        return b"".join(parts)

    def _apply_settings(self, payload: bytes) -> None:
        for offset in range(0, len(payload) - 5, 6):
            key, value = struct.unpack_from(">HI", payload, offset)
            if key == _SETTING_INITIAL_WINDOW:
                if self._stream is not None:
                    self._stream.window += value - self._initial_window
                self._initial_window = value
            elif key == _SETTING_MAX_FRAME:
                self._max_frame = value

    def _account_received(self, length: int, stream: _Stream | None) -> None:
        """Top the receive windows up again, the connection's and a long-lived stream's."""
        self._received += length
        if self._received >= _REPLENISH_AT:
            self._sock.sendall(_frame(_WINDOW_UPDATE, 0, 0, struct.pack(">I", self._received)))
            self._received = 0
        if stream is not None:
            stream.received += length
            if stream.received >= _REPLENISH_AT:
                self._sock.sendall(_frame(_WINDOW_UPDATE, 0, stream.id, struct.pack(">I", stream.received)))
                stream.received = 0

    # ---- the socket ---------------------------------------------------------------------------

    def _read_frame(self) -> tuple[int, int, int, bytes]:
        buffer = self._buffer
        while len(buffer) < 9:
            self._fill()
        length = int.from_bytes(buffer[:3], "big")
        end = 9 + length
        while len(buffer) < end:
            self._fill()
        kind, flags = buffer[3], buffer[4]
        stream_id = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
        payload = bytes(buffer[9:end])
        del buffer[:end]
        return kind, flags, stream_id, payload

    def _fill(self) -> None:
        if self._deadline != _NEVER:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self._sock.settimeout(remaining)
        chunk = self._sock.recv(_READ_SIZE)
        if not chunk:
            raise InferenceServerError(f"{self._authority()} closed the connection", failure=UNREACHABLE)
        self._buffer += chunk

    def _connect(self) -> None:
        self.close()
        module: Any = socket
        if self._cooperative:
            from gevent import socket as module
        sock = module.create_connection(self._address, timeout=self._connect_timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            sock = self._secured(sock)
        sock.settimeout(None)
        settings = struct.pack(">HIHI", _SETTING_ENABLE_PUSH, 0, _SETTING_INITIAL_WINDOW, _MAX_WINDOW)
        window = struct.pack(">I", _MAX_WINDOW - _DEFAULT_WINDOW)
        sock.sendall(_PREFACE + _frame(_SETTINGS, 0, 0, settings) + _frame(_WINDOW_UPDATE, 0, 0, window))
        self._sock = sock
        self._buffer.clear()
        self._decoder = hpack.Decoder()
        self._next_stream = 1
        self._send_window = self._initial_window = _DEFAULT_WINDOW
        self._max_frame = _DEFAULT_MAX_FRAME
        self._received = 0
        self._going_away = False
        self._stream = None

    def _secured(self, sock: Any) -> Any:
        """The TLS handshake (within the connect timeout); gRPC over TLS needs ``h2`` agreed in it."""
        try:
            secure = self._tls.wrap_socket(sock, server_hostname=self._address[0])
        except BaseException:
            sock.close()
            raise
        if secure.selected_alpn_protocol() != "h2":
            secure.close()
            raise InferenceServerError(
                f"{self._authority()} did not agree to HTTP/2 in the TLS handshake (ALPN h2)", failure=UNREACHABLE
            )
        return secure

    def _authority(self) -> str:
        return f"{self._address[0]}:{self._address[1]}"

    def close(self) -> None:
        sock, self._sock = self._sock, None
        self._stream = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


class GrpcWireConnection(_Http2):
    """Unary calls of one method (``ModelInfer``), one at a time: a worker's ``LoadConnection``."""

    last_resent = False  # never sent twice: a failure is reported as it is

    def __init__(
        self,
        address: tuple[str, int],
        path: str,
        metadata: list[tuple[str, str]],
        timeout_s: float | None,
        decode: Callable[[bytes], InferResult],
        cooperative: bool = False,
        connect_timeout_s: float = 10.0,
        tls: Any = None,
        compression: str | None = None,
    ) -> None:
        scheme = "https" if tls is not None else "http"
        block = header_block(path, f"{address[0]}:{address[1]}", metadata, timeout_s, scheme, compression)
        super().__init__(address, block, cooperative, connect_timeout_s, tls, compression)
        self.decode_raw = decode  # what ``send_raw`` returns, as outputs (timed apart as Client Recv)
        self._timeout_s = timeout_s
        self.last_send_ns = 0

    def send_raw(self, request: Any) -> bytes:
        """Send a ``GrpcRequest``; the serialised response message, or ``InferenceServerError``."""
        self._deadline = time.monotonic() + self._timeout_s if self._timeout_s is not None else _NEVER
        with self._failures(self._timeout_s):
            stream = self._open_stream()
            started = time.perf_counter_ns()
            self._send_message(stream, request.payload, end_stream=True, with_headers=True)
            self.last_send_ns = time.perf_counter_ns() - started
            while not stream.ended:
                self._handle(*self._read_frame())
            self._stream = None
            message = self._take_message(stream)
        if stream.error is not None:  # the server's refusal: the connection goes on
            raise stream.error
        if message is None:
            raise InferenceServerError("the server ended the call without a whole response", failure=BAD_RESPONSE)
        return message


class GrpcWireStream(_Http2):
    """One bidirectional stream of one method (``ModelStreamInfer``): write messages, read messages.

    The stream opens with the first write and lasts until the server ends it or a failure
    closes the connection; the next write then opens a fresh one.
    """

    def __init__(
        self,
        address: tuple[str, int],
        path: str,
        metadata: list[tuple[str, str]],
        cooperative: bool = False,
        connect_timeout_s: float = 10.0,
        tls: Any = None,
        compression: str | None = None,
    ) -> None:
        scheme = "https" if tls is not None else "http"
        block = header_block(path, f"{address[0]}:{address[1]}", metadata, None, scheme, compression)
        super().__init__(address, block, cooperative, connect_timeout_s, tls, compression)
        self._timeout_s: float | None = None

    def write(self, payload: bytes, timeout_s: float) -> None:
        """Send one message; the timeout covers this write and the reads that follow it."""
        self._timeout_s = timeout_s
        self._deadline = time.monotonic() + timeout_s
        with self._failures(timeout_s):
            stream = self._stream
            opening = stream is None or stream.ended
            if opening:
                stream = self._open_stream()
            self._send_message(stream, payload, end_stream=False, with_headers=opening)

    def read(self) -> bytes | None:
        """The next message; None when the server ended the stream without an error."""
        stream = self._stream
        if stream is None:
            return None
        with self._failures(self._timeout_s):
            message = self._take_message(stream)
            while message is None and not stream.ended:
                self._handle(*self._read_frame())
                message = self._take_message(stream)
        if message is not None:
            return message
        self._stream = None  # ended: the next write opens a new stream
        if stream.error is not None:
            raise stream.error
        return None


def _unpadded(flags: int, payload: bytes, priority: bool = False) -> bytes:
    """A frame's payload without its padding (and, for HEADERS, its priority fields)."""
    start, end = 0, len(payload)
    if flags & _PADDED:
        start, end = 1, len(payload) - payload[0]
    if priority and flags & _PRIORITY:
        start += 5
    return payload if (start, end) == (0, len(payload)) else payload[start:end]


def _call_error(headers: dict[str, str]) -> InferenceServerError | None:
    """The call's failure as its trailers (or a trailers-only answer) say; None on success."""
    status = headers.get("grpc-status")
    if status is None:
        http_status = headers.get(":status", "?")
        code = _HTTP_CODES.get(int(http_status) if http_status.isdigit() else 0, "UNKNOWN")
        return InferenceServerError(f"HTTP {http_status} without a gRPC status", grpc_code=code)
    if status == "0":
        return None
    code = _GRPC_CODES.get(int(status) if status.isdigit() else -1, "UNKNOWN")
    return InferenceServerError(unquote(headers.get("grpc-message", "")) or code, grpc_code=code)
