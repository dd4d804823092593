"""Whether the server is gone, asked only after requests found no server, and not too often."""

from __future__ import annotations

import time

from perfprobe.client import InferenceClient
from perfprobe.client.errors import TIMEOUT, InferenceServerError


class ServerWatch:
    """Answers "is the server gone?" from the connection failures seen, probing it at most every ``probe_every_s``."""

    def __init__(self, client: InferenceClient, probe_every_s: float = 0.5) -> None:
        self.client = client
        self.probe_every_s = probe_every_s
        self._last_probe = float("-inf")
        self._gone = False

    def gone(self, connection_failures: int) -> bool:
        """A probe that finds no server (refused, reset) or one that says it is not live: gone. A probe that
        times out is not: the server is there but stalled (SIGSTOP, a long pause), and the windows that saw no
        success say so; a stall must not read as a server that went away."""
        if not connection_failures:
            return False
        now = time.monotonic()
        if now - self._last_probe < self.probe_every_s:
            return self._gone
        self._last_probe = now
        try:
            self._gone = not self.client.is_server_live()
        except InferenceServerError as exc:
            self._gone = exc.status != TIMEOUT
        except Exception:
            self._gone = True
        return self._gone
