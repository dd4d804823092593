"""``--export-requests``: every measured request in ``requests.jsonl``, checked against the run's own figures."""

from __future__ import annotations

import collections
import itertools
import json
import statistics
from pathlib import Path

import pytest

import perfprobe
from tests.conftest import run_perfprobe

COMMON = ("--measurement-interval", "300", "--max-trials", "3", "--no-report")


def _run(server, protocol: str, out: Path, *flags: str, expect: int = 0) -> tuple[dict, list[dict]]:
    result = run_perfprobe(
        "sweep", "-i", protocol, "-u", server.url(protocol), *COMMON, "--output-dir", str(out), *flags
    )
    assert result.returncode == expect, result.stderr
    document = json.loads((out / "results.json").read_text())
    rows = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    return document, rows


def _by_window(rows: list[dict]) -> dict[tuple[float, int], list[dict]]:
    grouped: dict[tuple[float, int], list[dict]] = collections.defaultdict(list)
    for row in rows:
        grouped[(row["level"], row["window"])].append(row)
    return grouped


def _assert_every_window_whole(document: dict, rows: list[dict]) -> None:
    """Each window's lines: exactly its completed and failed requests, flagged reported as results.json says."""
    grouped = _by_window(rows)
    assert len(grouped) == sum(len(level["windows"]) for level in document["levels"])
    for level in document["levels"]:
        reported = set(level["reported_windows"])
        for window in level["windows"]:
            own = grouped[(level["level"], window["index"])]
            assert len(own) == window["completed"] + sum(window["errors"].values())
            assert sum(row["error"] is None for row in own) == window["completed"]
            assert {row["reported"] for row in own} == {window["index"] in reported}
            for row in own:
                assert row["send_ns"] < row["end_ns"]
                assert row["latency_us"] == pytest.approx((row["end_ns"] - row["send_ns"]) / 1000)


@pytest.mark.parametrize(("protocol", "flags"), [("http", ()), ("grpc", ("--mode", "stream"))])
def test_closed_loop_requests_match_the_windows_and_their_percentiles(
    server, tmp_path: Path, protocol: str, flags: tuple[str, ...]
) -> None:
    document, rows = _run(
        server, protocol, tmp_path, "-m", "simple", "--concurrency", "1:2", "--export-requests", *flags
    )
    assert document["settings"]["export_requests"] is True
    _assert_every_window_whole(document, rows)
    assert {row["model"] for row in rows} == {"simple"} and {row["process"] for row in rows} == {None}
    grouped = _by_window(rows)
    for level in document["levels"]:
        # drained boundaries: every request of a window ended before any of the next one did
        ends = [[row["end_ns"] for row in grouped[(level["level"], w["index"])]] for w in level["windows"]]
        assert all(max(earlier) < min(later) for earlier, later in itertools.pairwise(ends))
        reported = [row["latency_us"] for row in rows if row["level"] == level["level"] and row["reported"]]
        csv_p50 = next(r for r in _csv(tmp_path) if float(r["Concurrency"]) == level["level"])["p50 latency"]
        assert statistics.median_low(reported) == pytest.approx(int(csv_p50), rel=0.02, abs=2)


def _csv(out: Path) -> list[dict]:
    import csv

    with (out / "results.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_two_load_processes_each_name_their_requests(server, tmp_path: Path) -> None:
    document, rows = _run(
        server, "grpc", tmp_path, "-m", "simple", "--concurrency", "4", "--processes", "2", "--export-requests"
    )
    _assert_every_window_whole(document, rows)
    grouped = _by_window(rows)
    for level in document["levels"]:
        for window in level["windows"]:
            own = collections.Counter(row["process"] for row in grouped[(level["level"], window["index"])])
            assert own == {share["process"]: share["requests"] for share in window["processes"]}
            assert set(own) == {0, 1}


def test_open_loop_requests_carry_their_intended_send_times(server, tmp_path: Path) -> None:
    document, rows = _run(server, "http", tmp_path, "-m", "simple", "--request-rate", "300", "--export-requests")
    _assert_every_window_whole(document, rows)
    assert all(row["intended_ns"] is not None and row["send_ns"] >= row["intended_ns"] for row in rows)
    # the schedule is constant: one intended send every 1/300 s
    intended = sorted(
        row["intended_ns"] for row in rows if row["window"] == document["levels"][0]["windows"][-1]["index"]
    )
    assert statistics.median(b - a for a, b in itertools.pairwise(intended)) == pytest.approx(1e9 / 300, rel=0.01)


def test_failed_requests_and_several_models_are_named(server, tmp_path: Path) -> None:
    document, rows = _run(
        server, "http", tmp_path, "-m", "simple", "-m", "refuse_all@c=1", "--shape", "INPUT0:16", "--concurrency", "1",
        "--export-requests",
    )  # fmt: skip
    _assert_every_window_whole(document, rows)
    by_model = collections.defaultdict(set)
    for row in rows:
        by_model[row["model"]].add(row["error"])
    assert by_model["simple"] == {None}
    assert by_model["refuse_all"] and None not in by_model["refuse_all"]


def test_without_the_option_nothing_is_kept(server, tmp_path: Path) -> None:
    result = perfprobe.sweep(
        "simple", url=server.http_url, concurrency=1, measurement_interval=300, max_trials=2, output_dir=str(tmp_path)
    )
    assert result.requests.empty
    assert not (tmp_path / "requests.jsonl").exists()
    kept = perfprobe.sweep("simple", url=server.http_url, concurrency=1, measurement_interval=300, max_trials=2,
                           export_requests=True)  # fmt: skip
    assert len(kept.requests) == sum(
        w.stats.completed + w.stats.error_count for level in kept.level_results for w in level.windows
    )
    assert {"send_ns", "end_ns", "latency_us", "error", "reported"} <= set(kept.requests.columns)


def test_each_saved_level_leaves_memory_and_reads_back_whole(server, tmp_path: Path) -> None:
    """With an output directory the log grows level by level; memory keeps no level already written."""
    written_after: list[int] = []

    class CountingObserver(perfprobe.RunObserver):
        def level_done(self, level) -> None:
            written_after.append(len((tmp_path / "run" / "requests.jsonl").read_text().splitlines()))

    result = perfprobe.sweep(
        "simple", url=server.http_url, concurrency="1:2", measurement_interval=300, max_trials=2,
        export_requests=True, output_dir=str(tmp_path / "run"), no_report=True, observer=CountingObserver(),
    )  # fmt: skip
    per_level = [sum(w.stats.completed + w.stats.error_count for w in level.windows) for level in result.level_results]
    assert written_after == list(itertools.accumulate(per_level))  # each level appended as it ended
    assert all(w.stats.requests is None for level in result.level_results for w in level.windows)
    read_back = result.requests  # from the file now
    assert read_back.groupby("level").size().tolist() == per_level
    assert read_back["latency_us"].gt(0).all() and read_back["error"].isna().all()
    result.save(tmp_path / "copy")  # elsewhere: the saved requests go along, whole
    assert (tmp_path / "copy" / "requests.jsonl").read_text() == (tmp_path / "run" / "requests.jsonl").read_text()
