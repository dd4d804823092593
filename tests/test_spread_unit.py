"""How load is dealt over processes, without a server: in-flight shares, schedules, merged windows."""

from __future__ import annotations

import numpy as np
import pytest

from perfprobe.load.schedule import ScheduleSpec
from perfprobe.measure.histogram import HistogramLimits
from perfprobe.measure.window import Window, merge_concurrent, merge_window
from perfprobe.spread.group import closed_shares, split_count


@pytest.mark.parametrize(("total", "parts"), [(1, 2), (2, 2), (3, 2), (7, 4), (16, 3), (5, 8)])
def test_in_flight_shares_add_up_and_differ_by_at_most_one(total: int, parts: int) -> None:
    shares = split_count(total, parts)
    assert sum(shares) == total and len(shares) == parts
    assert max(shares) - min(shares) <= 1
    assert sum(1 for share in shares if share) == min(total, parts)  # with c < N only c processes load


@pytest.mark.parametrize(
    ("concurrency", "levels", "members"),
    [(1, [None, 3], 2), (2, [None, 3], 2), (5, [None, 1, 1, 1], 3), (4, [None, 7, 2], 4), (3, [None], 2)],
)
def test_several_models_shares_keep_each_models_level_and_spread_the_remainders(
    concurrency: int, levels: list[float | None], members: int
) -> None:
    per_member = closed_shares(concurrency, levels, members)
    assert len(per_member) == members and all(len(shares) == len(levels) for shares in per_member)
    for model, level in enumerate(levels):
        column = [shares[model] for shares in per_member]
        assert sum(column) == (concurrency if level is None else level)
        assert max(column) - min(column) <= 1
    loads = [sum(shares) for shares in per_member]
    assert max(loads) - min(loads) <= 1  # no process collects every model's extra request


def _offsets(spec: ScheduleSpec, part: int, parts: int, count: int) -> list[int]:
    schedule = spec.build(part, parts)
    return [schedule.next_offset() for _ in range(count)]


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("spec", [ScheduleSpec(300.0), ScheduleSpec(1.0, intervals_us=(100, 250, 1000, 5))])
def test_a_fixed_schedule_dealt_out_is_exactly_the_whole(spec: ScheduleSpec, parts: int) -> None:
    whole = _offsets(spec, 0, 1, 600)
    dealt = sorted(offset for part in range(parts) for offset in _offsets(spec, part, parts, 600 // parts))
    assert dealt == whole


def test_poisson_parts_are_independent_and_merge_to_the_asked_rate() -> None:
    spec = ScheduleSpec(1000.0, "poisson", seed=3)
    parts = [np.array(_offsets(spec, part, 2, 20001)) for part in range(2)]
    for offsets in parts:
        gaps = np.diff(offsets) / 1e9
        assert abs(gaps.mean() - 1 / 500) / (1 / 500) < 0.03  # each part Poisson(rate / 2)
        assert abs(gaps.std() / gaps.mean() - 1) < 0.05  # exponential gaps
    assert not np.array_equal(np.diff(parts[0]), np.diff(parts[1]))  # independent streams
    merged = np.sort(np.concatenate(parts))
    horizon = min(parts[0][-1], parts[1][-1])
    arrivals = merged[merged < horizon]
    assert abs(len(arrivals) / (horizon / 1e9) - 1000) / 1000 < 0.03


def test_a_window_from_several_processes_merges_exactly() -> None:
    limits = HistogramLimits()
    rng = np.random.default_rng(1)
    values = [rng.integers(50_000, 5_000_000, size=size).tolist() for size in (700, 300)]
    parts = []
    for latencies in values:
        window = Window(0, limits)
        for latency in latencies:
            window.slot("w").success(latency)
        window.slot("w").failure("500", "no")
        parts.append(merge_window(window, window.start_ns + 1_000_000_000))
    merged = merge_concurrent(parts)
    union = Window(0, limits)
    for latency in values[0] + values[1]:
        union.slot("w").success(latency)
    expected = merge_window(union, union.start_ns + 1).latency
    assert merged.latency.summary() == expected.summary()
    assert merged.completed == 1000 and merged.errors == {"500": 2}
    assert merged.duration_ns == max(part.duration_ns for part in parts)  # side by side, not one after the other


def test_shared_memory_on_a_cluster_needs_every_process_on_this_host() -> None:
    import socket

    from perfprobe.errors import UsageError
    from perfprobe.spread.start import _check_shared_memory_hosts

    here = socket.gethostname()
    _check_shared_memory_hosts("system", [here, here])  # all on the server's host: allowed
    _check_shared_memory_hosts("none", [here, "node-b"])  # over the wire: anywhere
    with pytest.raises(UsageError, match="placed some on node-b"):
        _check_shared_memory_hosts("system", [here, "node-b"])


def test_a_load_process_using_most_of_its_core_is_named_in_the_warnings() -> None:
    from perfprobe.load.sweeper import LevelResult, MeasureSettings, Sweeper, WindowRecord
    from perfprobe.load.windowed import ProcessShare

    window = Window(0, HistogramLimits())
    for _ in range(100):
        window.slot("w").success(1_000_000)
    stats = merge_window(window, window.start_ns + 1_000_000_000)
    shares = [
        ProcessShare(0, "host", 10, 50, 0, 0, 950_000_000, 1_000_000_000),  # 95% of its core
        ProcessShare(1, "host", 11, 50, 0, 0, 300_000_000, 1_000_000_000),
    ]
    level = LevelResult("concurrency", 4, [WindowRecord(stats, {}, None, 1_250_000_000, True, shares)])
    sweeper = Sweeper(lambda: None, None, ["m"], MeasureSettings())  # type: ignore[arg-type]
    sweeper._diagnose(level, open_loop=False, schedule_rate=None)
    said = [w for w in level.warnings if "load processes near a full core" in w]
    assert len(said) == 1 and "0 (95%)" in said[0] and "1 (" not in said[0] and "add processes" in said[0]
