"""perfprobe's own HTTP/2 connection for unary gRPC: against the real server (answers, refusals, a
large tensor under flow control) and against a stand-in HTTP/2 server (named so) for what Triton
cannot be made to do: tiny windows, padded and continued frames, resets, GOAWAY, silence."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import hpack
import numpy as np
import pytest

from perfprobe.client import InferenceServerError, InferInput, grpc_wire, make_client
from perfprobe.client.compression import compress, decompress
from perfprobe.client.errors import BAD_RESPONSE
from perfprobe.client.grpc_client import GrpcRequest
from perfprobe.client.grpc_wire import GrpcWireConnection, GrpcWireStream, grpc_timeout, header_block
from perfprobe.transport import transport_for

PATH = "/inference.GRPCInferenceService/ModelInfer"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9


# ---- against the real server ------------------------------------------------------------------


def _simple_inputs() -> list[InferInput]:
    return [InferInput(name, np.arange(16, dtype=np.int32).reshape(1, 16)) for name in ("INPUT0", "INPUT1")]


def test_answers_match_grpcio_on_the_real_server(server) -> None:
    with make_client("grpc", server.url("grpc"), timeout_s=10) as client:
        request = client.build_request("simple", _simple_inputs())
        wire = client.wire_connection()
        assert wire is not None
        try:
            for _ in range(3):  # one connection, several streams
                result = wire.decode_raw(wire.send_raw(request))
                np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), client.send(request).as_numpy("OUTPUT0"))
            assert wire.last_send_ns > 0
        finally:
            wire.close()


def test_refusals_carry_the_same_code_and_message_as_grpcio(server) -> None:
    with make_client("grpc", server.url("grpc"), timeout_s=10) as client:
        wire = client.wire_connection()
        assert wire is not None
        for request in (
            client.build_request("refuse_all", [InferInput("INPUT0", np.zeros(4, np.int32))]),
            client.build_request("no_such_model", [InferInput("X", np.zeros(1, np.int32))]),
            client.build_request("simple", [InferInput("INPUT0", np.zeros((1, 5), np.int32))]),
        ):
            with pytest.raises(InferenceServerError) as by_grpcio:
                client.send_raw(request)
            with pytest.raises(InferenceServerError) as by_wire:
                wire.send_raw(request)
            assert (by_wire.value.grpc_code, by_wire.value.message) == (
                by_grpcio.value.grpc_code,
                by_grpcio.value.message,
            )
        wire.close()


def test_a_tensor_larger_than_every_window_goes_through(server) -> None:
    """16 MiB each way: far past HTTP/2's initial 64 KiB windows and 16 KiB frames."""
    values = np.random.default_rng(1).random(4 * 1024 * 1024, dtype=np.float32)
    with make_client("grpc", server.url("grpc"), timeout_s=30) as client:
        wire = client.wire_connection()
        assert wire is not None
        request = client.build_request("identity", [InferInput("INPUT0", values)])
        for _ in range(2):
            np.testing.assert_array_equal(wire.decode_raw(wire.send_raw(request)).as_numpy("OUTPUT0"), values)
        wire.close()


def test_compression_and_tls_stay_on_the_own_connection() -> None:
    compressed = make_client("grpc", "127.0.0.1:1", request_compression="gzip").wire_connection()
    assert ("grpc-encoding", "gzip") in hpack.Decoder().decode(compressed._block)
    assert transport_for("http").connections == ()  # HTTP has one way to send; only gRPC offers the own HTTP/2
    secure = make_client("grpc", "grpcs://127.0.0.1:1").wire_connection()
    assert secure is not None and secure._tls is not None  # TLS with the system's roots, offering h2
    assert hpack.Decoder().decode(secure._block)[1] == (":scheme", "https")


# ---- the request's header block ---------------------------------------------------------------


def test_the_header_block_decodes_to_grpcs_request_headers() -> None:
    long_value = "v" * 300  # a length past HPACK's 7-bit prefix
    block = header_block(PATH, "127.0.0.1:8001", [("X-Trace", long_value)], 2.5)
    assert hpack.Decoder().decode(block) == [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", PATH),
        (":authority", "127.0.0.1:8001"),
        ("te", "trailers"),
        ("content-type", "application/grpc"),
        ("grpc-timeout", "2500m"),
        ("x-trace", long_value),
    ]
    assert header_block(PATH, "h:1", [], None).count(b"grpc-timeout") == 0


@pytest.mark.parametrize(
    ("seconds", "header"), [(0.0001, "1m"), (30, "30000m"), (99_999.999, "99999999m"), (1e6, "1000000S")]
)
def test_grpc_timeout_stays_within_eight_digits(seconds: float, header: str) -> None:
    assert grpc_timeout(seconds) == header


# ---- against a stand-in HTTP/2 server ---------------------------------------------------------


class Peer:
    """The server's end of one connection, frame by frame."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        assert self._read(len(PREFACE)) == PREFACE

    def _read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        out, self.buffer = self.buffer[:count], self.buffer[count:]
        return out

    def frame(self) -> tuple[int, int, int, bytes]:
        head = self._read(9)
        length = int.from_bytes(head[:3], "big")
        return head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF, self._read(length)

    def send(self, kind: int, flags: int, stream_id: int, payload: bytes = b"") -> None:
        self.sock.sendall(
            struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", stream_id) + payload
        )

    def request(self, on_data: Callable[[int, bytes], None] | None = None) -> tuple[int, dict[str, str], bytes]:
        """Read frames up to a request's END_STREAM: its stream, headers and body."""
        headers: dict[str, str] = {}
        body = b""
        while True:
            kind, flags, stream_id, payload = self.frame()
            if kind == HEADERS:
                headers.update(self.decoder.decode(payload))
            elif kind == DATA:
                body += payload
                if on_data is not None:
                    on_data(stream_id, payload)
                if flags & 0x1:
                    return stream_id, headers, body

    def headers(self, stream_id: int, fields: list[tuple[str, str]], end: bool = False) -> None:
        self.send(HEADERS, 0x4 | (0x1 if end else 0), stream_id, self.encoder.encode(fields))

    def answer(self, stream_id: int, message: bytes) -> None:
        self.headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
        self.send(DATA, 0, stream_id, b"\x00" + struct.pack(">I", len(message)) + message)
        self.headers(stream_id, [("grpc-status", "0")], end=True)


class StandIn:
    """Stand-in HTTP/2 server: runs ``script`` on each connection it accepts (in order)."""

    def __init__(self, scripts: list[Callable[[Peer], None]]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.scripts = scripts
        self.connections = 0
        self.failures: list[BaseException] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return self.listener.getsockname()

    def _accept(self) -> socket.socket | None:
        self.listener.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                return self.listener.accept()[0]
            except TimeoutError:
                continue
        return None

    def _serve(self) -> None:
        for script in self.scripts:
            sock = self._accept()
            if sock is None:
                return
            self.connections += 1
            with sock:
                try:
                    script(Peer(sock))
                except EOFError:
                    pass
                except BaseException as exc:  # reported by the test
                    self.failures.append(exc)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()
        assert not self.failures, self.failures


@pytest.fixture
def stand_in() -> Iterator[Callable[..., StandIn]]:
    made: list[StandIn] = []

    def start(*scripts: Callable[[Peer], None]) -> StandIn:
        made.append(StandIn(list(scripts)))
        return made[-1]

    yield start
    for one in made:
        one.close()


def _connection(peer_server: StandIn, timeout_s: float | None = 5.0) -> GrpcWireConnection:
    return GrpcWireConnection(peer_server.address, PATH, [], timeout_s, decode=lambda raw: raw)


def _request(payload: bytes) -> GrpcRequest:
    return GrpcRequest(payload, "model")


def _linger(peer: Peer) -> None:
    """Keep the connection open until the client closes it."""
    while True:
        peer.frame()


def test_a_request_waits_for_the_servers_windows_and_frame_size(stand_in) -> None:
    payload = bytes(range(256)) * 1024  # 256 KiB: past the default windows, in several frames
    grants: list[int] = []

    def script(peer: Peer) -> None:
        peer.send(SETTINGS, 0, 0, struct.pack(">HI", 4, 1000))  # stream windows of 1000 bytes
        credit = 65_535  # the connection window before any grant
        received = 0

        def on_data(stream_id: int, chunk: bytes) -> None:
            nonlocal credit, received
            received += len(chunk)
            assert len(chunk) <= 16_384, "a DATA frame larger than the default frame size"
            assert received <= credit, "sent past the connection window"
            if received >= credit - 1000:  # open both windows a little, as a slow reader would
                grants.append(30_000)
                credit += 30_000
                peer.send(WINDOW_UPDATE, 0, 0, struct.pack(">I", 30_000))
                peer.send(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", 30_000 + 65_535))

        stream_id, headers, body = peer.request(on_data)
        assert headers[":path"] == PATH and headers["content-type"] == "application/grpc"
        assert body == b"\x00" + struct.pack(">I", len(payload)) + payload
        peer.answer(stream_id, b"ok")
        _linger(peer)

    connection = _connection(stand_in(script))
    assert connection.send_raw(_request(payload)) == b"ok"
    connection.close()
    assert grants, "the stand-in never had to open its window"


def test_padded_prioritised_and_continued_frames_pings_and_settings_are_handled(stand_in) -> None:
    acks: list[tuple[int, bytes]] = []

    def script(peer: Peer) -> None:
        stream_id, _, _ = peer.request()
        peer.send(PING, 0, 0, b"12345678")
        peer.send(SETTINGS, 0, 0, struct.pack(">HI", 5, 32_768))
        block = peer.encoder.encode([(":status", "200"), ("content-type", "application/grpc")])
        # HEADERS: padded (3 bytes), with priority fields, continued in a CONTINUATION frame
        first = b"\x03" + b"\x00\x00\x00\x00\x10" + block[:2] + b"\x00" * 3
        peer.send(HEADERS, 0x8 | 0x20, stream_id, first)
        peer.send(CONTINUATION, 0x4, stream_id, block[2:])
        message = b"\x00\x00\x00\x00\x05hello"
        peer.send(DATA, 0x8, stream_id, b"\x02" + message[:4] + b"\x00\x00")  # padded
        peer.send(DATA, 0, stream_id, message[4:])
        peer.headers(stream_id, [("grpc-status", "0")], end=True)
        while len(acks) < 2:
            kind, flags, _, payload = peer.frame()
            if flags & 0x1 and kind in (PING, SETTINGS):
                acks.append((kind, payload))
        _linger(peer)

    connection = _connection(stand_in(script))
    assert connection.send_raw(_request(b"x")) == b"hello"
    deadline = time.monotonic() + 5
    while len(acks) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    connection.close()
    assert sorted(acks) == [(SETTINGS, b""), (PING, b"12345678")]


def _answered_with(*frames: Callable[[Peer, int], None]) -> Callable[[Peer], None]:
    def script(peer: Peer) -> None:
        for send in frames:
            stream_id, _, _ = peer.request()
            send(peer, stream_id)
        _linger(peer)

    return script


def test_a_trailers_only_refusal_keeps_its_code_and_message_and_the_connection(stand_in) -> None:
    reason = "bad input: 'x' 100%"

    def refuse(peer: Peer, stream_id: int) -> None:
        peer.headers(
            stream_id,
            [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "3"),
             ("grpc-message", quote(reason, safe=" '"))],
            end=True,
        )  # fmt: skip

    server = stand_in(_answered_with(refuse, lambda peer, stream_id: peer.answer(stream_id, b"next")))
    connection = _connection(server)
    with pytest.raises(InferenceServerError) as refused:
        connection.send_raw(_request(b"x"))
    assert (refused.value.grpc_code, refused.value.message, refused.value.status) == (
        "INVALID_ARGUMENT",
        reason,
        "INVALID_ARGUMENT",
    )
    assert connection.send_raw(_request(b"x")) == b"next"
    connection.close()
    assert server.connections == 1


def test_compressed_messages_each_way_and_an_encoding_never_offered(stand_in) -> None:
    """The request goes flagged and compressed; an answer is read in the encoding its headers name."""
    seen: list[tuple[dict[str, str], bytes]] = []

    def answer_compressed(encoding: str) -> Callable[[Peer, int], None]:
        def send(peer: Peer, stream_id: int) -> None:
            packed = compress(b"answer" * 50, "gzip")
            peer.headers(
                stream_id, [(":status", "200"), ("content-type", "application/grpc"), ("grpc-encoding", encoding)]
            )
            peer.send(DATA, 0, stream_id, b"\x01" + struct.pack(">I", len(packed)) + packed)
            peer.headers(stream_id, [("grpc-status", "0")], end=True)

        return send

    def script(peer: Peer) -> None:
        for send in (answer_compressed("gzip"), answer_compressed("br")):
            stream_id, headers, body = peer.request()
            seen.append((headers, body))
            send(peer, stream_id)
        _linger(peer)

    server = stand_in(script)
    connection = GrpcWireConnection(server.address, PATH, [], 5.0, decode=lambda raw: raw, compression="gzip")
    assert connection.send_raw(_request(b"question" * 50)) == b"answer" * 50
    headers, body = seen[0]
    assert headers["grpc-encoding"] == "gzip" and "gzip" in headers["grpc-accept-encoding"]
    assert body[0] == 1 and int.from_bytes(body[1:5], "big") == len(body) - 5 < 400
    assert decompress(body[5:], "gzip") == b"question" * 50
    with pytest.raises(InferenceServerError) as refused:
        connection.send_raw(_request(b"again"))
    assert refused.value.failure == BAD_RESPONSE and "'br'" in refused.value.message
    connection.close()


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([(RST_STREAM, struct.pack(">I", 8))], "CANCELLED"),
        ([(RST_STREAM, struct.pack(">I", 7))], "UNAVAILABLE"),
        ([(RST_STREAM, struct.pack(">I", 2))], "INTERNAL"),
        ([(GOAWAY, struct.pack(">II", 0, 0))], "UNAVAILABLE"),  # the request was never processed
        ([(HEADERS, ":status=503")], "UNAVAILABLE"),  # an HTTP error without a gRPC status
        ([(HEADERS, ":status=200"), (DATA, "body-then-end")], "UNKNOWN"),  # no trailers: no status
    ],
)
def test_resets_goaway_and_missing_statuses_fail_the_call_then_a_fresh_call_works(
    stand_in, frames: list[tuple[int, Any]], code: str
) -> None:
    def fail(peer: Peer, stream_id: int) -> None:
        for kind, detail in frames:
            if kind == HEADERS:
                name, value = detail.split("=")
                peer.headers(stream_id, [(name, value)], end=value == "503")
            elif kind == DATA:
                peer.send(DATA, 0x1, stream_id, b"\x00\x00\x00\x00\x00")
            else:
                peer.send(kind, 0, 0 if kind == GOAWAY else stream_id, detail)

    def answer(peer: Peer) -> None:
        stream_id, _, _ = peer.request()
        peer.answer(stream_id, b"fresh")
        _linger(peer)

    server = stand_in(_answered_with(fail), answer)
    connection = _connection(server)
    with pytest.raises(InferenceServerError) as failed:
        connection.send_raw(_request(b"x"))
    assert failed.value.grpc_code == code
    if frames[0][0] in (RST_STREAM, GOAWAY):  # the connection's state is in doubt: a new one
        assert connection.send_raw(_request(b"x")) == b"fresh"
        assert server.connections == 2
    connection.close()


def test_silence_is_one_timeout_and_the_late_answer_never_reaches_the_next_call(stand_in) -> None:
    release = threading.Event()

    def silent(peer: Peer) -> None:
        stream_id, _, _ = peer.request()
        release.wait(5)
        with contextlib.suppress(OSError):  # the client gave up on this connection and closed it
            peer.answer(stream_id, b"late")

    def answer(peer: Peer) -> None:
        stream_id, _, _ = peer.request()
        peer.answer(stream_id, b"on time")
        _linger(peer)

    server = stand_in(silent, answer)
    connection = _connection(server, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(InferenceServerError) as timed_out:
        connection.send_raw(_request(b"x"))
    assert timed_out.value.status == "TIMEOUT" and timed_out.value.no_answer
    assert 0.25 < time.monotonic() - started < 2
    release.set()
    assert connection.send_raw(_request(b"x")) == b"on time"
    connection.close()


def test_a_connection_closed_mid_call_or_refused_is_unreachable(stand_in) -> None:
    def hang_up(peer: Peer) -> None:
        peer.request()
        peer.sock.shutdown(socket.SHUT_RDWR)

    server = stand_in(hang_up)
    connection = _connection(server)
    with pytest.raises(InferenceServerError) as closed:
        connection.send_raw(_request(b"x"))
    assert closed.value.unreachable
    server.close()
    with pytest.raises(InferenceServerError) as refused:
        connection.send_raw(_request(b"x"))
    assert refused.value.unreachable


# ---- streams ----------------------------------------------------------------------------------

STREAM_PATH = "/inference.GRPCInferenceService/ModelStreamInfer"


def _stream(peer_server: StandIn) -> GrpcWireStream:
    return GrpcWireStream(peer_server.address, STREAM_PATH, [])


def _prefixed(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


def _next_message(peer: Peer) -> tuple[int, bytes]:
    """The next request message on any stream (the stream stays open)."""
    while True:
        kind, _, stream_id, payload = peer.frame()
        if kind == DATA:
            return stream_id, payload[5:]


def test_a_stream_carries_many_messages_each_way_and_reopens_after_the_server_ends_it(stand_in) -> None:
    def script(peer: Peer) -> None:
        stream_id, first = _next_message(peer)
        assert first == b"one"
        peer.headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
        both = _prefixed(b"a") + _prefixed(b"bb")  # two messages in one frame, then one split in two
        peer.send(DATA, 0, stream_id, both + _prefixed(b"ccc")[:4])
        peer.send(DATA, 0, stream_id, _prefixed(b"ccc")[4:])
        assert _next_message(peer) == (stream_id, b"two")  # the same stream
        peer.headers(stream_id, [("grpc-status", "0")], end=True)
        reopened, third = _next_message(peer)
        assert (reopened, third) == (stream_id + 2, b"three")  # a new stream on the same connection
        peer.headers(reopened, [(":status", "200"), ("grpc-status", "13"), ("grpc-message", "gone")], end=True)
        _linger(peer)

    server = stand_in(script)
    stream = _stream(server)
    stream.write(b"one", 5.0)
    assert [stream.read(), stream.read(), stream.read()] == [b"a", b"bb", b"ccc"]
    stream.write(b"two", 5.0)
    assert stream.read() is None  # ended without an error
    stream.write(b"three", 5.0)
    with pytest.raises(InferenceServerError) as ended:
        stream.read()
    assert (ended.value.grpc_code, ended.value.message) == ("INTERNAL", "gone")
    stream.close()
    assert server.connections == 1


def test_a_silent_stream_times_out_and_the_next_write_opens_a_fresh_connection(stand_in) -> None:
    def silent(peer: Peer) -> None:
        _next_message(peer)
        _linger(peer)

    def answer(peer: Peer) -> None:
        stream_id, _ = _next_message(peer)
        peer.headers(stream_id, [(":status", "200")])
        peer.send(DATA, 0, stream_id, _prefixed(b"fresh"))
        _linger(peer)

    server = stand_in(silent, answer)
    stream = _stream(server)
    stream.write(b"x", 0.3)
    with pytest.raises(InferenceServerError) as timed_out:
        stream.read()
    assert timed_out.value.status == "TIMEOUT"
    stream.write(b"y", 5.0)
    assert stream.read() == b"fresh"
    stream.close()
    assert server.connections == 2


def test_receive_windows_are_topped_up_for_the_connection_and_a_long_stream(stand_in, monkeypatch) -> None:
    monkeypatch.setattr(grpc_wire, "_REPLENISH_AT", 1000)
    updates: list[tuple[int, int]] = []

    def script(peer: Peer) -> None:
        stream_id, _ = _next_message(peer)
        peer.headers(stream_id, [(":status", "200")])
        for _ in range(3):
            peer.send(DATA, 0, stream_id, _prefixed(b"z" * 595))  # 600 bytes each
        while len(updates) < 2:
            kind, _, window_stream, payload = peer.frame()
            if kind == WINDOW_UPDATE and payload != struct.pack(">I", 2**31 - 1 - 65_535):
                updates.append((window_stream, int.from_bytes(payload, "big")))
        _linger(peer)

    server = stand_in(script)
    stream = _stream(server)
    stream.write(b"x", 5.0)
    assert [stream.read() for _ in range(3)] == [b"z" * 595] * 3
    deadline = time.monotonic() + 5
    while len(updates) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    stream.close()
    assert sorted(updates) == [(0, 1200), (1, 1200)]  # after the second frame: 1200 >= 1000, both windows


def test_a_header_block_that_does_not_decode_is_a_bad_response_and_the_connection_is_replaced(stand_in) -> None:
    def garbage(peer: Peer) -> None:
        stream_id, _, _ = peer.request()
        peer.send(HEADERS, 0x4 | 0x1, stream_id, b"\xff\xff\xff\xff\xff")  # an index far past any table
        _linger(peer)

    def answer(peer: Peer) -> None:
        stream_id, _, _ = peer.request()
        peer.answer(stream_id, b"fresh")
        _linger(peer)

    server = stand_in(garbage, answer)
    connection = _connection(server)
    with pytest.raises(InferenceServerError) as bad:
        connection.send_raw(_request(b"x"))
    assert bad.value.status == "BAD_RESPONSE"
    assert connection.send_raw(_request(b"x")) == b"fresh"
    connection.close()
