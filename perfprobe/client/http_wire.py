"""The inference hot path over HTTP/1.1: whole requests pre-encoded, responses parsed minimally.

geventhttpclient's general request builder merges header objects and reparses for every
call; a load generator resending the same request needs none of that. Here a request is
encoded once into its exact bytes (request line, headers, body) and sent on a kept-alive
socket taken from geventhttpclient's connection pool; the response parser reads only the
status, the headers we act on, and a Content-Length or chunked body.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from perfprobe.client.sockets import send_whole

_HEADER_END = b"\r\n\r\n"
_Read = TypeVar("_Read")
_CLOSED_BEFORE_HEADERS = "connection closed before the response headers"
# the only response headers the client acts on; everything else is skipped unparsed
_FIELDS = re.compile(
    rb"\r\n(content-length|inference-header-content-length|content-encoding|connection|transfer-encoding)"
    rb"[ \t]*:[ \t]*([^\r\n]*)",
    re.IGNORECASE,
)


class TruncatedAnswer(OSError):
    """The server began answering and the connection ended before the answer was whole."""


class WireError(OSError):
    """The connection broke or the server's answer was not valid HTTP/1.1."""


def encode_request(method: str, uri: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    """The complete bytes of an HTTP/1.1 request with a Content-Length body."""
    lines = [f"{method} {uri} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body


def read_head(sock: Any, read_size: int = 65536) -> tuple[int, dict[str, str], bytearray, bool]:
    """Read a response's status line and headers: (status, lower-cased headers, bytes read past them,
    connection reusable)."""
    buffer = bytearray()
    while True:
        end = buffer.find(_HEADER_END)
        if end >= 0:
            break
        chunk = sock.recv(read_size)
        if not chunk:
            if buffer:
                raise TruncatedAnswer("connection closed inside the response headers")
            raise WireError(_CLOSED_BEFORE_HEADERS)
        buffer += chunk
    head = bytes(buffer[:end])
    if not head.startswith(b"HTTP/1.") or head[12:13] not in (b" ", b"\r", b""):
        raise WireError(f"not an HTTP/1.x response: {head[:80]!r}")
    try:
        status = int(head[9:12])
    except ValueError:
        raise WireError(f"not an HTTP/1.x response: {head[:80]!r}") from None
    headers = {
        match.group(1).decode("ascii").lower(): match.group(2).strip().decode("latin-1")
        for match in _FIELDS.finditer(head)
    }
    reusable = headers.get("connection", "").lower() != "close"
    return status, headers, buffer[end + 4 :], reusable


def read_response(sock: Any, read_size: int = 65536) -> tuple[int, dict[str, str], bytes, bool]:
    """Read one response: (status, lower-cased headers, body, connection reusable)."""
    status, headers, rest, reusable = read_head(sock, read_size)
    if "content-length" in headers:
        body = _read_exact(sock, rest, int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b"".join(_chunks(sock, rest, read_size))
    else:  # body runs to the end of the connection
        body, reusable = b"".join(_to_the_end(sock, rest, read_size)), False
    return status, headers, body, reusable


def body_pieces(sock: Any, headers: dict[str, str], rest: bytearray, read_size: int = 65536) -> Iterator[bytes]:
    """A body as it arrives, piece by piece (a streamed answer: server-sent events)."""
    if "content-length" in headers:
        yield _read_exact(sock, rest, int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        yield from _chunks(sock, rest, read_size)
    else:
        yield from _to_the_end(sock, rest, read_size)


def _to_the_end(sock: Any, rest: bytearray, read_size: int) -> Iterator[bytes]:
    if rest:
        yield bytes(rest)
    while chunk := sock.recv(read_size):
        yield chunk


def _read_exact(sock: Any, already: bytearray, length: int) -> bytes:
    if len(already) >= length:
        return bytes(already[:length])
    body = bytearray(length)
    body[: len(already)] = already
    view = memoryview(body)
    filled = len(already)
    while filled < length:
        received = sock.recv_into(view[filled:], length - filled)
        if not received:
            raise TruncatedAnswer(f"connection closed after {filled} of {length} body bytes")
        filled += received
    return bytes(body) if length < 1 << 20 else body  # large bodies stay as the bytearray, uncopied


def _chunks(sock: Any, buffer: bytearray, read_size: int) -> Iterator[bytes]:
    """A chunked body's chunks, each yielded as soon as it is whole."""
    while True:
        while (line_end := buffer.find(b"\r\n")) < 0:
            chunk = sock.recv(read_size)
            if not chunk:
                raise TruncatedAnswer("connection closed inside a chunked body")
            buffer += chunk
        size = int(bytes(buffer[:line_end]).split(b";")[0], 16)
        del buffer[: line_end + 2]
        while len(buffer) < size + 2:
            chunk = sock.recv(read_size)
            if not chunk:
                raise TruncatedAnswer("connection closed inside a chunk")
            buffer += chunk
        if size == 0:
            return
        yield bytes(buffer[:size])
        del buffer[: size + 2]


class WireConnection:
    """One socket kept by one worker for all its requests (returned to the pool on close)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._sock: Any = None
        self.last_send_ns = 0  # time the last request took to write onto the socket
        self.last_resent = False  # the last request went out twice (its kept-alive socket was stale)

    def exchange(self, wire: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send pre-encoded request bytes, return (status, headers, body).

        A kept-alive socket the server closed while idle fails at once (reset, or closed before
        any answer); the request is then sent once more on a fresh socket and ``last_resent``
        says so, because the server may have seen it. A timeout is never resent.
        """
        status, headers, body, reusable = self._round_trip(wire, read_response)
        if not reusable:
            self._discard()
        return status, headers, body

    def open_stream(self, wire: bytes) -> tuple[int, dict[str, str], Iterator[bytes]]:
        """Send, read the head, and return the body as it arrives: (status, headers, pieces).

        The pieces must be read to the end (the socket is kept for the next request only then);
        a failure while reading them discards the socket.
        """
        status, headers, rest, reusable = self._round_trip(wire, read_head)
        return status, headers, self._pieces(headers, rest, reusable)

    def _pieces(self, headers: dict[str, str], rest: bytearray, reusable: bool) -> Iterator[bytes]:
        sock = self._sock
        try:
            yield from body_pieces(sock, headers, rest)
        except BaseException:
            self._discard()
            raise
        if not reusable or "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", ""):
            self._discard()

    def _round_trip(self, wire: bytes, read: Callable[[Any], _Read]) -> _Read:
        """Send ``wire`` and ``read`` the answer's start, resending once on a stale kept-alive socket."""
        self.last_resent = False
        for attempt in (0, 1):
            reused = self._sock is not None
            if self._sock is None:
                self._sock = self._pool.get_socket()
            try:
                started = time.perf_counter_ns()
                send_whole(self._sock, wire)
                self.last_send_ns = time.perf_counter_ns() - started
                return read(self._sock)
            except (OSError, WireError) as exc:
                self._discard()
                if reused and attempt == 0 and _stale_socket(exc):
                    self.last_resent = True
                    continue
                raise
        raise WireError("unreachable")

    def _discard(self) -> None:
        if self._sock is not None:
            self._pool.release_socket(self._sock)
            self._sock = None

    def close(self) -> None:
        if self._sock is not None:
            self._pool.return_socket(self._sock)
            self._sock = None


def _stale_socket(exc: BaseException) -> bool:
    """The failure of a socket the server had already closed, as opposed to a slow or dead server."""
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return False
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return True
    return closed_before_answer(exc)


def closed_before_answer(exc: BaseException) -> bool:
    """The server closed the connection without a byte of answer."""
    return isinstance(exc, WireError) and str(exc) == _CLOSED_BEFORE_HEADERS


class PlainSocketPool:
    """Blocking stdlib sockets for thread workers: no event loop between us and the kernel.

    The same three calls as geventhttpclient's pool (get / return / release), so a
    ``WireConnection`` works on either.
    """

    def __init__(
        self, host: str, port: int, connection_timeout: float, network_timeout: float, ssl_context: Any = None
    ) -> None:
        self._address = (host, port)
        self._connection_timeout = connection_timeout
        self._network_timeout = network_timeout
        self._ssl_context = ssl_context
        self._idle: list[Any] = []

    def get_socket(self) -> Any:
        import socket

        if self._idle:
            return self._idle.pop()
        sock = _blocking_connection(self._address, self._connection_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self._network_timeout)
        if self._ssl_context is not None:
            sock = self._ssl_context.wrap_socket(sock, server_hostname=self._address[0])
        return sock

    def return_socket(self, sock: Any) -> None:
        self._idle.append(sock)

    def release_socket(self, sock: Any) -> None:
        sock.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def _blocking_connection(address: tuple[str, int], timeout_s: float) -> Any:
    """A connected stdlib socket, even where gevent has patched ``socket``.

    Under the patch, ``socket.create_connection`` makes cooperative sockets, and a thread waiting
    on one runs a gevent hub of its own: the cost thread workers exist to avoid.
    """
    import socket

    from perfprobe.greenlets import patched

    if not patched():
        return socket.create_connection(address, timeout=timeout_s)
    from gevent import monkey

    native = monkey.get_original("socket", "socket")
    resolve = monkey.get_original("socket", "getaddrinfo")
    failure: OSError | None = None
    for family, kind, proto, _, target in resolve(address[0], address[1], 0, socket.SOCK_STREAM):
        sock = native(family, kind, proto)
        try:
            sock.settimeout(timeout_s)
            sock.connect(target)
            return sock
        except OSError as exc:
            sock.close()
            failure = exc
    raise failure or OSError(f"cannot resolve {address[0]}")
