"""The one exception type every perfprobe client call raises for a failed request."""

from __future__ import annotations


class InferenceServerError(Exception):
    """A request the server refused or that never reached it.

    Exactly one of ``http_status`` / ``grpc_code`` is set for answers from a server; both
    are None when the failure happened before any answer (connection refused, timeout).
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        grpc_code: str | None = None,
        debug: object = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.grpc_code = grpc_code
        self.debug = debug

    @property
    def status(self) -> str:
        """A short code for tables and counters: ``HTTP 400``, ``UNAVAILABLE``, ``NO_RESPONSE``."""
        if self.http_status is not None:
            return f"HTTP {self.http_status}"
        return self.grpc_code or "NO_RESPONSE"

    def __str__(self) -> str:
        return f"[{self.status}] {self.message}"
