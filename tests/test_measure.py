"""Measurement pieces without a server: ranges, schedules, histograms, stability, server deltas."""

from __future__ import annotations

import numpy as np
import pytest

from perfprobe.errors import UsageError
from perfprobe.load.ranges import parse_range
from perfprobe.load.schedule import Schedule
from perfprobe.measure import metrics, server_stats
from perfprobe.measure.histogram import LatencyHistogram
from perfprobe.measure.stability import StabilityRule
from perfprobe.measure.window import Recorder, merge_stats


def test_ranges() -> None:
    assert parse_range("1:4", "--concurrency", integer=True, minimum=1) == [1, 2, 3, 4]
    assert parse_range("1:32:x2", "--concurrency", integer=True, minimum=1) == [1, 2, 4, 8, 16, 32]
    assert parse_range("2:10:4", "--concurrency", integer=True, minimum=1) == [2, 6, 10]
    assert parse_range("8", "--concurrency", integer=True, minimum=1) == [8]
    assert parse_range("100:300:100", "--request-rate", integer=False, minimum=1e-6) == [100.0, 200.0, 300.0]
    for bad, message in (
        ("1:0", "below start"),
        ("0:4", "at least 1"),
        ("a:b", "whole numbers"),
        ("1:4:0", "positive"),
        ("1:4:x1", "above x1"),
        ("1:2:3:4", "expected"),
    ):
        with pytest.raises(UsageError, match=message):
            parse_range(bad, "--concurrency", integer=True, minimum=1)


def test_constant_schedule_has_no_drift() -> None:
    schedule = Schedule.at_rate(300.0)
    offsets = [schedule.next_offset() for _ in range(3001)]
    assert offsets[0] == 0
    assert offsets[3000] == 10_000_000_000  # exactly 10 s for 3000 gaps at 300/s


def test_poisson_schedule_mean_rate() -> None:
    schedule = Schedule.at_rate(1000.0, "poisson", seed=4)
    offsets = np.array([schedule.next_offset() for _ in range(20001)])
    gaps = np.diff(offsets)
    assert gaps.mean() == pytest.approx(1e6, rel=0.03)
    assert gaps.std() == pytest.approx(1e6, rel=0.05)  # exponential: std equals mean


def test_interval_schedule_loops() -> None:
    schedule = Schedule.from_intervals([100, 300])
    assert [schedule.next_offset() for _ in range(5)] == [0, 100_000, 400_000, 500_000, 800_000]


def test_histogram_summary_and_round_trip() -> None:
    histogram = LatencyHistogram()
    values_us = np.arange(1, 10001)
    for value in values_us:
        histogram.record_ns(int(value) * 1000)
    summary = histogram.summary()
    assert summary["count"] == 10000
    assert summary["p50"] == pytest.approx(5000, rel=0.001)
    assert summary["p99"] == pytest.approx(9900, rel=0.001)
    assert summary["mean"] == pytest.approx(5000.5)
    assert summary["std"] == pytest.approx(values_us.std(), rel=1e-6)
    assert summary["min"] == 1 and summary["max"] == pytest.approx(10000, rel=0.001)
    decoded = LatencyHistogram.decode(histogram.encode())
    assert decoded.summary() == summary
    decoded.merge(histogram)
    assert decoded.count == 20000 and decoded.percentile_us(50) == summary["p50"]


def test_recorder_windows_and_merge() -> None:
    recorder = Recorder()
    slot = recorder.current.slot("w1")
    for latency in (1_000_000, 2_000_000, 3_000_000):
        slot.success(latency, 0, 10_000)
    recorder.current.slot("w2").failure("HTTP 400")
    first = recorder.rotate()
    recorder.current.slot("w1").success(4_000_000)
    second = recorder.rotate()
    assert (first.completed, first.errors, second.completed) == (3, {"HTTP 400": 1}, 1)
    merged = merge_stats([first, second])
    assert merged.completed == 4 and merged.error_count == 1
    assert merged.latency.mean_us == pytest.approx(2500)


@pytest.mark.parametrize(
    ("throughputs", "latencies", "stable"),
    [
        ([100, 104, 98], [10, 10.5, 9.8], True),
        ([100, 120, 100], [10, 10, 10], False),  # throughput spread 20%
        ([100, 101, 100], [10, 12, 10], False),  # latency spread 20%
        ([50, 100, 104, 98], [30, 10, 10.5, 9.8], True),  # only the last three count
        ([100, 104], [10, 10], False),  # too few windows
        ([0, 0, 0], [0, 0, 0], False),  # nothing completed is not stable
    ],
)
def test_stability_rule(throughputs: list[float], latencies: list[float], stable: bool) -> None:
    assert StabilityRule(windows=3, tolerance=0.10).is_stable(throughputs, latencies) is stable


def test_stability_parameters_matter() -> None:
    assert StabilityRule(windows=2, tolerance=0.25).is_stable([100, 120], [10, 12])
    assert not StabilityRule(windows=2, tolerance=0.1).is_stable([100, 120], [10, 12])


def _counters(success: int, queue_ns: int, inference: int, execution: int) -> server_stats.ModelCounters:
    counts = dict.fromkeys(server_stats.DURATIONS, 0)
    nanos = dict.fromkeys(server_stats.DURATIONS, 0)
    counts.update(success=success, queue=success)
    nanos.update(queue=queue_ns)
    return server_stats.ModelCounters(inference, execution, counts, nanos)


def test_server_delta_and_reset() -> None:
    before = {"m": _counters(100, 1_000_000, 400, 100)}
    after = {"m": _counters(150, 1_500_000, 600, 125)}
    delta = server_stats.delta(before, after)["m"]
    assert (delta.success_count, delta.average_us("queue"), delta.average_batch, delta.reset) == (50, 10.0, 8.0, False)
    reloaded = server_stats.delta(after, {"m": _counters(7, 70_000, 7, 7)})["m"]
    assert reloaded.reset and reloaded.success_count == 7


def test_prometheus_parsing() -> None:
    text = """# HELP nv_cpu_utilization CPU utilization
nv_cpu_utilization 0.42
nv_cpu_memory_used_bytes 1.5e9
nv_gpu_utilization{gpu_uuid="a"} 0.5
nv_gpu_utilization{gpu_uuid="b"} 0.25
nv_inference_count{model="simple",version="1"} 12
"""
    parsed = metrics.parse_prometheus(text)
    assert parsed == {"nv_cpu_utilization": 0.42, "nv_cpu_memory_used_bytes": 1.5e9, "nv_gpu_utilization": 0.75}


def test_bulk_recording_equals_one_by_one() -> None:
    rng = np.random.default_rng(1)
    values = rng.lognormal(12, 1.5, 20000).astype(np.int64)
    values[:4] = [0, 999, 1000, 5 * 10**15]  # below the resolution, at it, and beyond the range
    one_by_one, bulk = LatencyHistogram(), LatencyHistogram()
    for value in values:
        one_by_one.record_ns(int(value))
    bulk.record_many_ns(values)
    np.testing.assert_array_equal(np.ctypeslib.as_array(one_by_one.hdr.counts), np.ctypeslib.as_array(bulk.hdr.counts))
    expected, got = one_by_one.summary(), bulk.summary()
    assert got.pop("std") == pytest.approx(expected.pop("std"))
    assert got == expected and bulk.clamped == one_by_one.clamped == 1
