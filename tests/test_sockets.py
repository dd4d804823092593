"""send_whole: one send for what fits, the rest still delivered whole and in order."""

from __future__ import annotations

import socket
import threading

from perfprobe.client.sockets import send_whole


class _CountingSocket:
    """A real socket, counting the calls send_whole makes on it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.calls: list[str] = []

    def send(self, data: bytes) -> int:
        self.calls.append("send")
        return self.sock.send(data)

    def sendall(self, data: memoryview) -> None:
        self.calls.append("sendall")
        self.sock.sendall(data)


def _drain(sock: socket.socket, into: bytearray, length: int) -> None:
    while len(into) < length and (chunk := sock.recv(1 << 16)):
        into += chunk


def test_a_payload_larger_than_the_socket_buffer_arrives_whole() -> None:
    writer, reader = socket.socketpair()
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    writer.settimeout(5.0)  # a timeout makes one send take only what the buffer holds
    payload = bytes(range(256)) * (8 << 12)  # 8 MiB
    received = bytearray()
    drainer = threading.Thread(target=_drain, args=(reader, received, len(payload)))
    drainer.start()
    counting = _CountingSocket(writer)
    try:
        send_whole(counting, payload)
        drainer.join(10)
    finally:
        writer.close()
        reader.close()
    assert counting.calls == ["send", "sendall"]
    assert bytes(received) == payload


def test_a_small_request_takes_one_send() -> None:
    writer, reader = socket.socketpair()
    counting = _CountingSocket(writer)
    try:
        send_whole(counting, b"POST /v2/models/simple/infer HTTP/1.1\r\n\r\n")
        assert reader.recv(100).startswith(b"POST /v2/models/simple/infer")
    finally:
        writer.close()
        reader.close()
    assert counting.calls == ["send"]
