"""A stand-in proxy for tests: forwards TCP connections to a real server, counting the bytes each way.

With an SSL server context it also ends TLS, as the proxy in front of Triton's HTTP endpoint
would in a deployment (Triton's HTTP endpoint has no TLS of its own).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading


class Relay:
    """Listens on a loopback port of its own; ``sent``: bytes towards the server, ``received``: back.

    ``keep``: the first that many bytes each way are kept too (``traffic_sent``, ``traffic_received``).
    """

    def __init__(
        self, upstream: tuple[str, int], tls: ssl.SSLContext | None = None, keep: int = 0, cut_after: int = 0
    ) -> None:
        """``cut_after``: every second connection (the 2nd, 4th, ...) is closed once that many bytes of
        answers went through it (answers cut short by the network)."""
        self.upstream = upstream
        self.cut_after = cut_after
        self.connections = 0
        self.tls = tls
        self.keep = keep
        self.traffic_sent = bytearray()
        self.traffic_received = bytearray()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sent = self.received = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(near,), daemon=True).start()

    def _serve(self, near: socket.socket) -> None:
        try:
            if self.tls is not None:
                near = self.tls.wrap_socket(near, server_side=True)
            far = socket.create_connection(self.upstream)
        except OSError:
            near.close()
            return
        far.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sockets += [near, far]
        with self._lock:
            self.connections += 1
            limit = self.cut_after if self.cut_after and self.connections % 2 == 0 else 0
        threading.Thread(target=self._pump, args=(far, near, False, limit), daemon=True).start()
        self._pump(near, far, True)

    def _pump(self, source: socket.socket, sink: socket.socket, towards_server: bool, limit: int = 0) -> None:
        passed = 0
        with contextlib.suppress(OSError):
            while data := source.recv(262144):
                if limit and passed + len(data) >= limit:
                    sink.sendall(data[: limit - passed])
                    break  # the rest of the answer never arrives: both ends are closed below
                passed += len(data)
                sink.sendall(data)
                with self._lock:
                    if towards_server:
                        self.sent += len(data)
                    else:
                        self.received += len(data)
                    kept = self.traffic_sent if towards_server else self.traffic_received
                    kept += data[: max(self.keep - len(kept), 0)]
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)  # wakes the other direction's pump, and tells the peer
            with contextlib.suppress(OSError):
                end.close()

    def close(self) -> None:
        self.listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
