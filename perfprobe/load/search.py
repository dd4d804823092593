"""Which load levels a sweep measures: all in order, up to a latency threshold, or by binary search.

perf_analyzer's three searches: a linear sweep over the levels, the same sweep stopped at the
first level whose latency passes the threshold, and a binary search for the highest level
under the threshold (the first and last levels bound it). Measuring one level is the caller's
``measure``; this module only decides what to measure next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from perfprobe.load.sweeper import LevelResult


@dataclass(frozen=True)
class LatencyLimit:
    """A latency (``mean`` or a percentile such as ``p99``) that a level must stay at or under."""

    key: str
    limit_us: float

    def passed_by(self, result: LevelResult) -> bool:
        value = result.merged().latency.summary().get(self.key, 0)
        return value > self.limit_us


def search_levels(
    levels: Sequence[float],
    measure: Callable[[float], LevelResult],
    limit: LatencyLimit | None = None,
    binary: bool = False,
    on_note: Callable[[str], None] = lambda text: None,
) -> Iterator[LevelResult]:
    """Measure levels in search order, yielding each result as soon as it is measured."""
    if binary and limit is not None and len(levels) > 1:
        yield from _binary(levels, measure, limit, on_note)
        return
    for level in levels:
        result = measure(level)
        yield result
        if limit is not None and limit.passed_by(result):
            on_note(
                f"stopping: {limit.key} latency passed {limit.limit_us / 1000:g} ms at {result.load_kind} {level:g}"
            )
            return


def _binary(
    levels: Sequence[float],
    measure: Callable[[float], LevelResult],
    limit: LatencyLimit,
    on_note: Callable[[str], None],
) -> Iterator[LevelResult]:
    low, high = 0, len(levels) - 1
    first = measure(levels[low])
    yield first
    if limit.passed_by(first):
        return
    last = measure(levels[high])
    yield last
    if not limit.passed_by(last):
        return
    while high - low > 1:
        middle = (low + high) // 2
        result = measure(levels[middle])
        yield result
        if limit.passed_by(result):
            high = middle
        else:
            low = middle
    on_note(f"highest {first.load_kind} under {limit.limit_us / 1000:g} ms: {levels[low]:g}")
