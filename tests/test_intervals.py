"""The statistics behind --repeats, the three-way gate and history detect, on numbers whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perfprobe.history.changes import change_points, last_segment
from perfprobe.measure import intervals


def test_the_t_interval_of_three_runs() -> None:
    found = intervals.mean_interval([1.0, 2.0, 3.0])
    # mean 2, sample sd 1, t(0.975, 2) = 4.3027: 2 ± 4.3027 / sqrt(3)
    assert found is not None and found.point == 2.0 and found.method == "mean"
    assert found.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert intervals.mean_interval([5.0]) is None and intervals.mean_interval([]) is None  # one run: none
    assert intervals.mean_interval([1.0, math.nan, 3.0]).runs == 2  # a run without the figure does not count


def test_the_medians_bootstrap_reaches_every_run_of_three_and_repeats_itself() -> None:
    found = intervals.median_interval([10.0, 30.0, 20.0])
    assert found is not None and (found.point, found.low, found.high) == (20.0, 10.0, 30.0)
    again = intervals.median_interval([10.0, 30.0, 20.0])
    assert again == found  # a fixed seed: the same runs give the same interval
    wide = intervals.median_interval(list(range(1, 41)))
    assert wide is not None and 1 < wide.low < wide.point < wide.high < 40  # many runs: inside their range


def test_paired_ratio_and_the_change_between_two_sets_of_runs() -> None:
    ratio = intervals.ratio_interval([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert ratio is not None and (ratio.point, ratio.low, ratio.high) == (2.0, 2.0, 2.0)  # every pair 2x
    change = intervals.change_interval([110.0, 120.0, 130.0], [100.0, 100.0, 100.0])
    # pooled: squares 200 over 4 degrees of freedom, se = sqrt(50 * 2/3); t(0.975, 4) = 2.7764
    assert change is not None and change.point == pytest.approx(0.2)
    assert change.half_width == pytest.approx(2.776445 * math.sqrt(50 * 2 / 3) / 100, rel=1e-5)
    one_each = intervals.change_interval([110.0], [100.0])
    assert one_each is None  # nothing to tell the noise from
    borrowed = intervals.change_interval([130.0], [90.0, 100.0, 110.0])  # one run borrows the baseline's spread
    assert borrowed is not None and borrowed.point == pytest.approx(0.3) and borrowed.half_width > 0


def test_runs_that_would_decide_shrink_as_the_interval_nears_the_limit() -> None:
    straddling = intervals.Interval(0.04, -0.02, 0.10, 3, "mean")
    near = intervals.repeats_to_decide(straddling, 0.05)
    far = intervals.repeats_to_decide(intervals.Interval(0.00, -0.06, 0.06, 3, "mean"), 0.05)
    assert near is not None and far is not None and far < near  # further from the limit: fewer runs
    assert intervals.repeats_to_decide(intervals.Interval(0.05, 0.0, 0.1, 3, "mean"), 0.05) is None  # on it


def test_change_points_find_a_planted_step_and_none_in_noise() -> None:
    rng = np.random.default_rng(7)
    flat = [list(rng.normal(100, 5, 3)) for _ in range(12)]
    assert change_points(flat) == [] and last_segment(flat) == 0
    stepped = flat[:6] + [[v * 1.3 for v in run] for run in flat[6:]]
    (point,) = change_points(stepped)
    assert point.index == 6 and point.change == pytest.approx(0.3, abs=0.08) and point.p_value < 0.01
    assert last_segment(stepped) == 6
    small = flat[:6] + [[v * 1.02 for v in run] for run in flat[6:]]
    assert change_points(small) == []  # below --min-change 5%, however significant
    two_steps = flat[:4] + [[v * 1.5 for v in run] for run in flat[4:8]] + [[v * 0.6 for v in run] for run in flat[8:]]
    assert [p.index for p in change_points(two_steps)] == [4, 8]
