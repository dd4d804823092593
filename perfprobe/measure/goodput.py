"""Goodput: the requests per second that met every service-level limit the user set.

``--goodput 'ttft<200ms,itl<20ms,latency<2s'`` limits a request's time to first token, its mean
inter-token latency and its end-to-end latency; a successful request counts as good when it is
under every limit given. A request that answered at once (no stream) has its latency as its time
to first token; one with fewer than two streamed responses has no inter-token latency and passes
an ``itl`` limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfprobe.errors import UsageError
from perfprobe.units import parse_duration_us

LIMITS = ("ttft", "itl", "latency")


@dataclass(frozen=True)
class Goodput:
    """The limits a good request stays under, in nanoseconds (None: not limited)."""

    text: str
    ttft_ns: int | None = None
    itl_ns: int | None = None
    latency_ns: int | None = None

    def met(self, latency_ns: int, first_ns: int | None, inter_token_ns: int | None) -> bool:
        ttft = latency_ns if first_ns is None else first_ns
        return (
            (self.ttft_ns is None or ttft < self.ttft_ns)
            and (self.itl_ns is None or inter_token_ns is None or inter_token_ns < self.itl_ns)
            and (self.latency_ns is None or latency_ns < self.latency_ns)
        )


def parse_goodput(text: str) -> Goodput:
    """``ttft<200ms,itl<20ms,latency<2s`` (a bare number is milliseconds); a UsageError names what is wrong."""
    limits: dict[str, int] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        name, sign, value = part.partition("<")
        name = name.strip().lower()
        if not sign or name not in LIMITS:
            raise UsageError(f"--goodput: {part!r} is not a limit like ttft<200ms ({', '.join(LIMITS)})")
        if f"{name}_ns" in limits:
            raise UsageError(f"--goodput: {name} is limited twice")
        try:
            micros = parse_duration_us(value)
        except ValueError as exc:
            raise UsageError(f"--goodput: {exc}") from None
        if micros <= 0:
            raise UsageError(f"--goodput: {part!r}: a limit must be more than 0")
        limits[f"{name}_ns"] = round(micros * 1000)
    if not limits:
        raise UsageError("--goodput: give at least one limit, like 'ttft<200ms,itl<20ms,latency<2s'")
    return Goodput(text.strip(), **limits)
