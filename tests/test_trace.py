"""Trace replay (``--request-trace``): sends at a recorded trace's times, sped up, looped, dealt over
load processes, with per-request inputs; against the real server, and the schedule on its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import perfprobe
from perfprobe.errors import UsageError
from perfprobe.load.schedule import ScheduleSpec, TraceTimes
from perfprobe.load.trace import read_trace
from tests.conftest import run_perfprobe


def _write_trace(path: Path, stamps: list[float], inputs: list[dict | None] | None = None) -> Path:
    with path.open("w") as handle:
        for index, stamp in enumerate(stamps):
            line: dict = {"timestamp_ms": stamp}
            if inputs and inputs[index] is not None:
                line["inputs"] = inputs[index]
            handle.write(json.dumps(line) + "\n")
    return path


def _two_phases() -> list[float]:
    """200 requests/s for a second, then 600 requests/s for a second."""
    return [i * 5.0 for i in range(200)] + [1000 + j * 1000 / 600 for j in range(600)]


# ---- the schedule, without a server ----------------------------------------------------------


@pytest.mark.parametrize("late", [0, 5])
def test_late_sends_of_a_trace_are_told_as_late_not_as_a_trace_not_followed(late: int) -> None:
    """A trace has no rate to fall short of: what can be told is the share of its sends that were late."""
    from perfprobe.load.sweeper import LevelResult, MeasureSettings, Sweeper, WindowRecord
    from perfprobe.measure.histogram import HistogramLimits
    from perfprobe.measure.window import Window, merge_window

    window = Window(0, HistogramLimits())
    slot = window.slot("w")
    for index in range(100):
        slot.success(1_000_000)
        slot.scheduled(1_000_000, 3_000_000 if index < late else 0, index < late)
    record = WindowRecord(merge_window(window, window.start_ns + 1_000_000_000), {}, None, 1_000_000, True)
    level = LevelResult("rate", 100, [record])
    Sweeper(lambda: None, None, ["m"], MeasureSettings())._diagnose(level, open_loop=True, schedule_rate=None)  # type: ignore[arg-type]
    assert not any("could not" in warning for warning in level.warnings)
    said = [warning for warning in level.warnings if "fell behind the trace" in warning]
    assert len(said) == (1 if late else 0)
    if late:
        assert "5.0% of sends late (5 late sends, worst lag 3.0 ms)" in said[0]


def test_a_trace_schedule_keeps_its_times_scaled_and_ends() -> None:
    times = TraceTimes((0, 1_000_000, 5_000_000))
    schedule = ScheduleSpec(1.0, trace=times).build()
    assert [schedule.next_send() for _ in range(3)] == [(0, 0), (1_000_000, 1), (5_000_000, 2)]
    assert schedule.next_send() is None and schedule.exhausted and not schedule.replayed  # three still unanswered
    for _ in range(3):
        schedule.answer()
    assert schedule.replayed


def test_a_looped_trace_repeats_after_one_mean_gap() -> None:
    schedule = ScheduleSpec(1.0, trace=TraceTimes((0, 2_000_000, 4_000_000), loop=True)).build()
    offsets = [schedule.next_send()[0] for _ in range(6)]  # type: ignore[index]
    assert offsets == [0, 2_000_000, 4_000_000, 6_000_000, 8_000_000, 10_000_000]


@pytest.mark.parametrize("parts", [2, 3])
def test_a_trace_dealt_over_processes_is_exactly_the_whole(parts: int) -> None:
    spec = ScheduleSpec(1.0, trace=TraceTimes(tuple(range(0, 70_000_000, 1_000_000))))
    single = spec.build()
    whole = [single.next_send() for _ in range(70)]
    dealt = []
    for part in range(parts):
        schedule = spec.build(part, parts)
        while (send := schedule.next_send()) is not None:
            dealt.append(send)
    assert sorted(dealt) == whole  # the same times, each with its own request number


def test_trace_requests_with_inputs_get_their_own_items(tmp_path: Path) -> None:
    path = _write_trace(tmp_path / "t.jsonl", [0, 1, 2, 3], [None, {"X": [1]}, None, {"X": [2]}])
    trace = read_trace(str(path), "m")
    assert trace.send_items(generated=3) == (0, 3, 2, 4)  # own inputs after the run's three items


def test_an_unordered_trace_is_sorted_and_bad_lines_are_named(tmp_path: Path) -> None:
    trace = read_trace(str(_write_trace(tmp_path / "t.jsonl", [5, 1, 3])), "m")
    assert trace.timestamps_ms == (1, 3, 5)
    cases = {
        '{"timestamp_ms": -1}': "timestamp_ms",
        '{"timestamp_ms": "soon"}': "timestamp_ms",
        '{"timestamp_ms": 1, "modle": "m"}': "unknown keys",
        '{"timestamp_ms": 1, "model": "other"}': "one model per trace",
        '{"timestamp_ms": 1, "sequence_id": 0}': "sequence_id must be",
        "[1, 2]": "expected an object",
        "{oops": "not JSON",
    }
    for text, says in cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"timestamp_ms": 0}\n' + text + "\n")
        with pytest.raises(UsageError, match=says) as caught:
            read_trace(str(bad), "m")
        assert "line 2" in str(caught.value)
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"timestamp_ms": 0, "sequence_id": 3}\n{"timestamp_ms": 1}\n')
    with pytest.raises(UsageError, match="1 of 2 requests have a sequence_id; all or none"):
        read_trace(str(mixed), "m")


def test_a_trace_names_its_sequences_start_at_the_first_request_end_at_the_last(tmp_path: Path) -> None:
    path = tmp_path / "seq.jsonl"
    lines = [(0, "a"), (1, 5), (2, "a"), (3, 5), (4, "a")]
    path.write_text("".join(json.dumps({"timestamp_ms": ms, "sequence_id": sid}) + "\n" for ms, sid in lines))
    steps = read_trace(str(path), "m").sequence_steps(generated=1)
    assert [(s.sequence_id, s.start, s.end) for s in steps] == [
        ("a", True, False),
        (5, True, False),
        ("a", False, False),
        (5, False, True),
        ("a", False, True),
    ]


# ---- against the server ------------------------------------------------------------------


@pytest.mark.parametrize(("protocol", "speedup", "processes"), [("http", 1.0, 1), ("http", 2.0, 1), ("grpc", 1.0, 2)])
def test_a_trace_is_replayed_at_its_times(
    server, tmp_path: Path, protocol: str, speedup: float, processes: int
) -> None:
    trace = _write_trace(tmp_path / "trace.jsonl", _two_phases())
    result = perfprobe.sweep(
        "simple",
        url=server.url(protocol),
        protocol=protocol,
        request_trace=str(trace),
        trace_speedup=speedup,
        processes=processes,
        measurement_interval=round(1000 / speedup),
        no_report=True,
    )
    level = result.document["levels"][0]
    assert level["trace"]["replayed"] == 1.0 and level["trace"]["sent"] == 800
    windows = level["windows"]
    assert [w["index"] for w in windows] == level["reported_windows"]  # a trace replayed once: every window
    assert sum(w["completed"] for w in windows) == 800 and not any(w["errors"] for w in windows)
    assert windows[0]["completed"] == pytest.approx(200, rel=0.05)  # the trace's two phases, window by window
    assert windows[1]["completed"] == pytest.approx(600, rel=0.05)
    replay_s = sum(w["duration_ns"] for w in windows) / 1e9
    assert replay_s == pytest.approx(2.0 / speedup, rel=0.05)
    row = result.rows[0]
    assert row["Late Sends"] != ""  # counted; how many depends on the machine's timers (2 cores, server included)
    assert row["Intended p50 latency"] >= 0.99 * row["p50 latency"]  # counted from the intended times
    assert row["Request Rate"] == pytest.approx(800 / (2.0 + 1 / 600) * speedup, rel=0.01)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_trace_drives_the_first_model_while_another_keeps_its_own_rate(
    server, tmp_path: Path, processes: int
) -> None:
    trace = _write_trace(tmp_path / "trace.jsonl", _two_phases())
    result = perfprobe.sweep(
        ["simple", "identity@rate=100"],
        url=server.http_url,
        request_trace=str(trace),
        shape=["INPUT0:16"],
        processes=processes,
        measurement_interval=1000,
        no_report=True,
    )
    level = result.level_results[0]
    assert level.trace is not None and level.trace["sent"] == 800 and level.trace["replayed"] == 1.0
    traced = level.for_model("simple", level.level).merged()
    assert traced.completed == 800 and traced.error_count == 0  # the trace's requests, all of them, once
    assert traced.duration_ns / 1e9 == pytest.approx(2.0, rel=0.05)  # the level ends with the trace's last answer
    held = level.for_model("identity", 100).merged()
    assert held.completed / (held.duration_ns / 1e9) == pytest.approx(100, rel=0.05)  # a constant rate of its own
    # the level did not wait out its windows for the other model to "finish" the trace (late sends may be warned of)
    assert not any("replayed" in warning for warning in level.warnings), level.warnings


def test_a_looped_trace_keeps_its_rate_until_stable(server, tmp_path: Path) -> None:
    trace = _write_trace(tmp_path / "short.jsonl", [i * 5.0 for i in range(100)])  # 200 requests/s for 0.5 s
    result = perfprobe.sweep(
        "simple",
        url=server.http_url,
        request_trace=str(trace),
        trace_loop=True,
        measurement_interval=500,
        stability_windows=3,
        max_trials=5,
        no_report=True,
    )
    level = result.document["levels"][0]
    assert level["trace"]["loop"] and level["trace"]["sent"] > 250  # three windows or more: round and round
    assert result.rows[0]["Inferences/Second"] == pytest.approx(200, rel=0.05)


def test_a_trace_cut_short_says_how_much_was_replayed(server, tmp_path: Path) -> None:
    trace = _write_trace(tmp_path / "long.jsonl", [i * 10.0 for i in range(300)])  # 3 s
    result = perfprobe.sweep(
        "simple", url=server.http_url, request_trace=str(trace), measurement_interval=500, max_trials=2, no_report=True
    )
    level = result.document["levels"][0]
    assert 0.2 < level["trace"]["replayed"] < 0.5
    assert "of the trace's 300 requests" in result.rows[0]["Warnings"]


def test_trace_requests_carry_their_own_inputs(server, tmp_path: Path) -> None:
    own = {"INPUT0": list(range(16)), "INPUT1": [1] * 16}
    trace = _write_trace(tmp_path / "inputs.jsonl", [i * 4.0 for i in range(100)], [own, None] * 50)
    result = perfprobe.sweep("simple", url=server.grpc_url, protocol="grpc", request_trace=str(trace), no_report=True)
    assert result.rows[0]["Completed"] == 100 and result.rows[0]["Errors"] == 0

    wrong = _write_trace(tmp_path / "wrong.jsonl", [0, 4], [None, {"INPUT0": ["a"] * 16, "INPUT1": [1] * 16}])
    refused = run_perfprobe("sweep", "-u", server.http_url, "-m", "simple", "--request-trace", str(wrong))
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "line 2" in lines[0] and "INPUT0" in lines[0], refused.stderr
