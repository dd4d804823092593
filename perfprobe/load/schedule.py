"""Open-loop schedules: the intended send time of every request, computed before sending.

Latency in open loop is counted from these intended times, so a client that falls behind
shows up as latency instead of silently sending less (no coordinated omission).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from perfprobe.errors import UsageError

DISTRIBUTIONS = ("constant", "poisson")


def read_intervals(path: str | Path) -> list[int]:
    """Gaps between sends in microseconds, one per line (perf_analyzer's --request-intervals)."""
    try:
        lines = Path(path).read_text().split()
    except OSError as exc:
        raise UsageError(f"cannot read request intervals {path}: {exc.strerror}") from None
    try:
        values = [int(float(line)) for line in lines]
    except ValueError:
        raise UsageError(f"{path}: every line must be a number of microseconds") from None
    if not values or any(v < 0 for v in values) or not any(values):
        raise UsageError(f"{path}: needs at least one positive interval and no negative ones")
    return values


class Schedule:
    """An endless iterator of intended send offsets in ns from the schedule's start."""

    def __init__(self, gaps_ns: Iterator[int]) -> None:
        self._gaps = gaps_ns
        self._offset = 0
        self._lock = threading.Lock()  # workers of any kind draw from one schedule

    @classmethod
    def at_rate(cls, rate: float, distribution: str = "constant", seed: int = 0) -> Schedule:
        if rate <= 0:
            raise UsageError(f"request rate must be positive, not {rate:g}")
        if distribution not in DISTRIBUTIONS:
            raise UsageError(f"unknown distribution {distribution!r}; expected {' or '.join(DISTRIBUTIONS)}")
        mean_ns = 1e9 / rate
        if distribution == "constant":
            # exact rational spacing: the k-th request at round(k * mean), no drift
            return cls(_constant_gaps(mean_ns))
        rng = np.random.default_rng(seed)
        return cls(_poisson_gaps(rng, mean_ns))

    @classmethod
    def from_intervals(cls, intervals_us: list[int]) -> Schedule:
        return cls(int(v) * 1000 for v in itertools.cycle(intervals_us))

    def next_offset(self) -> int:
        with self._lock:
            offset = self._offset
            self._offset += next(self._gaps)
        return offset


def _constant_gaps(mean_ns: float) -> Iterator[int]:
    previous = 0
    for index in itertools.count(1):
        current = round(index * mean_ns)
        yield current - previous
        previous = current


def _poisson_gaps(rng: np.random.Generator, mean_ns: float, block: int = 4096) -> Iterator[int]:
    while True:
        yield from (int(v) for v in rng.exponential(mean_ns, size=block))
