"""95% confidence intervals over repeated runs: what a figure could be, given the noise between runs.

A run's windows see only the noise inside one run; ``--repeats N`` measures each level N times,
and these intervals are taken over those N values (one per run):

- a mean-like figure (throughput, mean latency, a mean part of the breakdown): the mean of the
  runs and Student's t-interval around it;
- a percentile (p99, TTFT p99): the median of the runs and a percentile bootstrap of that median
  (resampling runs; a fixed seed, so the same runs give the same interval).

With one run there is no interval: ``None``, never a zero-width one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 4000
BOOTSTRAP_SEED = 20261203
METHODS = {"mean": "t-interval of the mean over runs", "median": "bootstrap of the median over runs"}


@dataclass(frozen=True)
class Interval:
    """A point estimate and its 95% confidence interval, from ``runs`` values."""

    point: float
    low: float
    high: float
    runs: int
    method: str  # "mean" (t-interval) or "median" (bootstrap), see METHODS

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def as_tuple(self) -> tuple[float, float, float]:
        return self.point, self.low, self.high


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray([float(v) for v in values], dtype=float)
    return array[np.isfinite(array)]


def t_quantile(degrees: float) -> float:
    """Student's t at 97.5% with these degrees of freedom (the 95% two-sided factor); scipy read when first needed."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, degrees))


def mean_interval(values: Sequence[float]) -> Interval | None:
    """The runs' mean with Student's t-interval; None with fewer than two values."""
    array = _finite(values)
    if len(array) < 2:
        return None
    mean = float(array.mean())
    half = t_quantile(len(array) - 1) * float(array.std(ddof=1)) / math.sqrt(len(array))
    return Interval(mean, mean - half, mean + half, len(array), "mean")


def median_interval(values: Sequence[float]) -> Interval | None:
    """The runs' median with a percentile bootstrap interval (runs resampled); None with fewer than two."""
    array = _finite(values)
    if len(array) < 2:
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    resampled = np.median(rng.choice(array, size=(BOOTSTRAP_RESAMPLES, len(array)), replace=True), axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return Interval(float(np.median(array)), float(low), float(high), len(array), "median")


def interval(values: Sequence[float], method: str) -> Interval | None:
    """The interval ``method`` ("mean" or "median") gives for these runs' values."""
    return mean_interval(values) if method == "mean" else median_interval(values)


def ratio_interval(numerators: Sequence[float], denominators: Sequence[float]) -> Interval | None:
    """Paired runs (A1 with B1, A2 with B2, measured back to back): A/B, mean of the pairs' ratios and its
    t-interval. None with fewer than two usable pairs."""
    ratios = [a / b for a, b in zip(numerators, denominators, strict=False) if b and math.isfinite(a / b)]
    return mean_interval(ratios)


def change_interval(now: Sequence[float], then: Sequence[float]) -> Interval | None:
    """The relative change of the mean from ``then`` to ``now`` ((now − then) / then) and its 95% interval.

    Student's two-sample t on the difference of means with the spread pooled over both sides (they are
    the same benchmark measured the same way, so they share one noise: a side of one or two runs borrows
    the other's), scaled by the baseline's mean. None when the sides have fewer than three values
    together, or the baseline's mean is 0.
    """
    a, b = _finite(now), _finite(then)
    if not len(a) or not len(b) or len(a) + len(b) < 3 or float(b.mean()) == 0:
        return None
    freedom = len(a) + len(b) - 2
    squares = float(((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum())
    error = math.sqrt(squares / freedom * (1 / len(a) + 1 / len(b)))
    half = t_quantile(freedom) * error
    base = float(b.mean())
    change = (float(a.mean()) - base) / base
    return Interval(change, change - half / abs(base), change + half / abs(base), min(len(a), len(b)), "mean")


def repeats_to_decide(found: Interval, limit: float, sides: int = 1, most: int = 1000) -> int | None:
    """About how many runs (per side, for a change between ``sides`` = 2 sets of runs) would make an interval
    that straddles ``limit`` fall to one side, if the runs keep their spread.

    The standard error shrinks as 1/√runs and Student's t with the degrees of freedom: the smallest
    count whose half-width comes below the distance from the estimate to the limit. None when the
    estimate sits on the limit or no count up to ``most`` would do.
    """
    distance = abs(found.point - limit)
    runs = max(found.runs, 1)
    if distance <= 0 or found.half_width <= 0:
        return None
    freedom = max(sides * (runs - 1), 1)
    error = found.half_width / t_quantile(freedom)  # the standard error at the runs measured
    for more in range(runs + 1, most + 1):
        if t_quantile(sides * (more - 1)) * error * math.sqrt(runs / more) < distance:
            return more
    return None
