"""When a load level's measurements can be trusted: perf_analyzer's stability rule, parameterised.

Over the last ``windows`` windows, the largest over the smallest throughput, and the
largest over the smallest of the chosen latency, must each be at most 1 + tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StabilityRule:
    windows: int = 3
    tolerance: float = 0.10  # --stability-percentage 10
    latency_key: str = "mean"  # "mean" or a percentile such as "p99"

    def spread(self, values: Sequence[float]) -> float:
        """max/min - 1 of the values (inf when the smallest is zero and the largest is not)."""
        low, high = min(values), max(values)
        if low <= 0:
            return 0.0 if high <= 0 else float("inf")
        return high / low - 1.0

    def is_stable(self, throughputs: Sequence[float], latencies: Sequence[float]) -> bool:
        if len(throughputs) < self.windows or len(latencies) < self.windows:
            return False
        recent_t = throughputs[-self.windows :]
        recent_l = latencies[-self.windows :]
        if max(recent_t) <= 0:
            return False
        return self.spread(recent_t) <= self.tolerance and self.spread(recent_l) <= self.tolerance
