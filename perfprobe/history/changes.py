"""Where a figure's series across runs changed: binary segmentation with a Mann-Whitney test.

Each run contributes its values (one, or one per ``--repeats`` run). The split of a segment
whose two sides differ most clearly (the smallest two-sided Mann-Whitney U p-value, scipy's) is
a change point when that p-value, Bonferroni-corrected for the splits tried, is below ``alpha``
and the medians differ by at least ``min_change``; each side is then searched again. The test
makes no assumption about the values' distribution (latency tails are far from normal) and
runs that look alike never give a change, whatever their order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.01
MIN_CHANGE = 0.05  # a shift smaller than this fraction of the earlier median is not reported
MIN_SEGMENT = 3  # runs on each side of a change at least


@dataclass(frozen=True)
class ChangePoint:
    index: int  # the first run of the new segment, by position in the series
    before: float  # the median before and after
    after: float
    p_value: float  # corrected for the splits tried

    @property
    def change(self) -> float:
        return (self.after - self.before) / self.before if self.before else float("inf")


def change_points(
    runs: Sequence[Sequence[float]],
    alpha: float = ALPHA,
    min_change: float = MIN_CHANGE,
    min_segment: int = MIN_SEGMENT,
) -> list[ChangePoint]:
    """The change points of a series of runs (each a sequence of values), in order."""
    found: list[ChangePoint] = []
    _split(list(runs), 0, alpha, min_change, max(min_segment, 1), found)
    return sorted(found, key=lambda point: point.index)


def _split(
    runs: list[Sequence[float]], offset: int, alpha: float, min_change: float, min_segment: int, found: list
) -> None:
    from scipy.stats import mannwhitneyu

    candidates = range(min_segment, len(runs) - min_segment + 1)
    best: tuple[float, int] | None = None
    for cut in candidates:
        before = [v for run in runs[:cut] for v in run]
        after = [v for run in runs[cut:] for v in run]
        if len(set(before) | set(after)) < 2:
            continue  # every value equal: no difference to test
        p_value = float(mannwhitneyu(before, after, alternative="two-sided").pvalue)
        if best is None or p_value < best[0]:
            best = (p_value, cut)
    if best is None:
        return
    p_value, cut = best
    corrected = min(p_value * len(candidates), 1.0)
    before_median = float(np.median([v for run in runs[:cut] for v in run]))
    after_median = float(np.median([v for run in runs[cut:] for v in run]))
    shift = abs(after_median - before_median) / abs(before_median) if before_median else float("inf")
    if corrected >= alpha or shift < min_change:
        return
    found.append(ChangePoint(offset + cut, before_median, after_median, corrected))
    _split(runs[:cut], offset, alpha, min_change, min_segment, found)
    _split(runs[cut:], offset + cut, alpha, min_change, min_segment, found)


def last_segment(runs: Sequence[Sequence[float]], **how: float) -> int:
    """Where the last stretch of runs without a change begins (0 when the whole series is one)."""
    points = change_points(runs, **how)  # type: ignore[arg-type]
    return points[-1].index if points else 0
