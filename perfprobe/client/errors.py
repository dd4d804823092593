"""The one exception type every perfprobe client call raises for a failed request."""

from __future__ import annotations

TIMEOUT = "TIMEOUT"
UNREACHABLE = "UNREACHABLE"  # nothing answered: refused, no route
RESET = "RESET"  # the connection was reset or closed before any answer to the request
TRUNCATED = "TRUNCATED"  # an answer began and the connection ended before it was whole
NOT_SUPPORTED = "NOT_SUPPORTED"  # a call the server or protocol does not offer (an absent extension)
BAD_RESPONSE = "BAD_RESPONSE"  # an answer that contradicts itself (outputs shorter than their shape)
ERROR_EVENT = "ERROR_EVENT"  # a generate answer or stream event carrying the server's ``error`` instead of output
BAD_EVENT = "BAD_EVENT"  # a stream event that is not a JSON object, or a stream that ended inside an event
# failures of answers that did come from the server: their message is the server's reason
ANSWERED = frozenset({BAD_RESPONSE, ERROR_EVENT, BAD_EVENT})
# error codes that mean the server itself is gone, not that it refused one request
CONNECTION_FAILURES = frozenset({UNREACHABLE, RESET, "UNAVAILABLE"})
# requests the server may have executed though no whole answer came back
MAYBE_SERVED = frozenset({TIMEOUT, RESET, TRUNCATED})


class InferenceServerError(Exception):
    """A request the server refused or that never reached it.

    Exactly one of ``http_status`` / ``grpc_code`` is set for answers from a server; both
    are None when the failure happened before any answer, and ``failure`` then says which:
    ``TIMEOUT`` (no answer in time), ``UNREACHABLE`` (refused), ``RESET`` (the connection ended before
    any answer) or ``TRUNCATED`` (it ended inside the answer).
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        grpc_code: str | None = None,
        debug: object = None,
        failure: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.grpc_code = grpc_code
        self.debug = debug
        self.failure = failure

    @property
    def status(self) -> str:
        """A short code for tables and counters: ``HTTP 400``, ``UNAVAILABLE``, ``NO_RESPONSE``."""
        if self.http_status is not None:
            return f"HTTP {self.http_status}"
        if self.grpc_code == "DEADLINE_EXCEEDED":
            return TIMEOUT
        return self.grpc_code or self.failure or "NO_RESPONSE"

    @property
    def no_answer(self) -> bool:
        """Nothing usable came back: unreachable, or timed out before any answer."""
        return self.http_status is None and (
            self.unreachable or self.status in (TIMEOUT, "NO_RESPONSE", RESET, TRUNCATED)
        )

    @property
    def unreachable(self) -> bool:
        """Nothing answered: connection refused, reset or closed, or a gRPC channel that is down."""
        return self.status in CONNECTION_FAILURES

    def __str__(self) -> str:
        return f"[{self.status}] {self.message}"
