"""Open-loop schedules: the intended send time of every request, computed before sending.

Latency in open loop is counted from these intended times, so a client that falls behind
shows up as latency instead of silently sending less (no coordinated omission).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
    """Intended send offsets in ns from the schedule's start, each with its send's number in the whole.

    The number (this part's k-th send is the whole's ``part + k * parts``-th) picks the request's
    data, so load processes following parts of a schedule send what one process would have sent.
    """

    def __init__(self, gaps_ns: Iterator[int], first_offset_ns: int = 0, part: int = 0, parts: int = 1) -> None:
        self._gaps = gaps_ns
        self._offset = first_offset_ns
        self._number = part
        self._parts = parts
        self._lock = threading.Lock()  # workers of any kind draw from one schedule
        self.taken = 0  # sends drawn so far
        self.answered = 0  # sends drawn and recorded
        self.last_answer_ns = 0  # when the last of them was recorded (perf_counter_ns)
        self.exhausted = False  # a schedule with an end (a trace replayed once) has none left

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

    @classmethod
    def dealt(cls, whole: Iterator[int], part: int, parts: int) -> Schedule:
        """Every ``parts``-th send of the gaps ``whole``, from send number ``part``.

        The parts together are exactly the whole schedule: ``parts`` processes each following
        one of them send at the whole schedule's times, interleaved.
        """
        first = sum(next(whole) for _ in range(part))
        return cls((sum(next(whole) for _ in range(parts)) for _ in itertools.count()), first, part, parts)

    def next_offset(self) -> int:
        send = self.next_send()
        assert send is not None, "an endless schedule"
        return send[0]

    def answer(self) -> None:
        """One drawn send was made and recorded."""
        with self._lock:
            self.answered += 1
            self.last_answer_ns = time.perf_counter_ns()

    @property
    def replayed(self) -> bool:
        """A schedule with an end is done: every send drawn, and every one of them recorded."""
        return self.exhausted and self.answered == self.taken

    def next_send(self) -> tuple[int, int] | None:
        """The next send's (offset, number in the whole schedule); None once a schedule with an end is done."""
        with self._lock:
            offset, number = self._offset, self._number
            self._offset += next(self._gaps)
            self._number += self._parts
            self.taken += 1
        return offset, number


def _constant_gaps(mean_ns: float) -> Iterator[int]:
    previous = 0
    for index in itertools.count(1):
        current = round(index * mean_ns)
        yield current - previous
        previous = current


def _poisson_gaps(rng: np.random.Generator, mean_ns: float, block: int = 4096) -> Iterator[int]:
    while True:
        yield from (int(v) for v in rng.exponential(mean_ns, size=block))


@dataclass(frozen=True)
class ScheduleSpec:
    """An open-loop schedule as data, so each load process can build its own part of it."""

    rate: float
    distribution: str = "constant"
    seed: int = 0
    intervals_us: tuple[int, ...] | None = None
    trace: TraceTimes | None = None  # a recorded trace's send times (``--request-trace``)

    def build(self, part: int = 0, parts: int = 1) -> Schedule:
        """The schedule of load process ``part`` of ``parts``; the parts merged keep the whole.

        A fixed schedule (constant rate, intervals file) is dealt out send by send, so the merged
        sends are exactly the whole's. Poisson arrivals are split as Poisson(rate / parts) with
        independent streams: merged, that is Poisson(rate) again.
        """
        if parts < 1 or not 0 <= part < parts:
            raise ValueError(f"part {part} of {parts}")
        if self.trace is not None:
            return TraceSchedule(self.trace, part, parts)
        if self.intervals_us:
            gaps: Iterator[int] = (int(v) * 1000 for v in itertools.cycle(self.intervals_us))
            return Schedule(gaps) if parts == 1 else Schedule.dealt(gaps, part, parts)
        if parts == 1:
            return Schedule.at_rate(self.rate, self.distribution, self.seed)
        Schedule.at_rate(self.rate, self.distribution, self.seed)  # the same checks as one process gets
        if self.distribution == "poisson":
            rng = np.random.default_rng([self.seed, part])
            return Schedule(_poisson_gaps(rng, 1e9 * parts / self.rate), 0, part, parts)
        return Schedule.dealt(_constant_gaps(1e9 / self.rate), part, parts)


@dataclass(frozen=True)
class TraceTimes:
    """A trace's send times, already scaled by the speed-up: offsets from its first send, in ns."""

    offsets_ns: tuple[int, ...]
    loop: bool = False

    @property
    def lap_ns(self) -> int:
        """One replay's length: its span and one mean gap, so a looped trace keeps its pace at the seam."""
        count = len(self.offsets_ns)
        span = self.offsets_ns[-1]
        return span + (span // (count - 1) if count > 1 else 1_000_000)

    def rate(self) -> float:
        """Requests per second, on average over one replay."""
        return len(self.offsets_ns) / (self.lap_ns / 1e9)


class TraceSchedule(Schedule):
    """Sends at a trace's times (every ``parts``-th of them, from ``part``), once or looped."""

    def __init__(self, trace: TraceTimes, part: int = 0, parts: int = 1) -> None:
        super().__init__(iter(()), 0, part, parts)
        self._trace = trace

    def next_send(self) -> tuple[int, int] | None:
        offsets = self._trace.offsets_ns
        with self._lock:
            number = self._number
            lap, index = divmod(number, len(offsets))
            if lap and not self._trace.loop:
                self.exhausted = True
                return None
            self._number += self._parts
            self.taken += 1
        return lap * self._trace.lap_ns + offsets[index], number
