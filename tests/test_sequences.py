"""Stateful sequence models against the real server: every mode and protocol, data-file sequences,
id ranges, failed steps, load processes; the model's own log is the server's view of each sequence."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import perfprobe
from perfprobe import exitcodes
from perfprobe.client import InferenceServerError, InferInput, RequestOptions, make_client
from perfprobe.errors import AllRequestsFailed
from perfprobe.server import EmbeddedServer
from tests.conftest import perfprobe_command, run_perfprobe

SEQUENCE_MODELS = Path(__file__).parent / "sequence_models"  # not on the shared server: a server of their own
MODELS = ("running_sum", "running_sum_strid")
WINDOWS = {"measurement_interval": 300, "stability_windows": 2, "max_trials": 3, "no_report": True}


@pytest.fixture(scope="module")
def sequence_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedServer, Path]]:
    """A server of its own whose sequence models log every request they answer into ``logs``."""
    root = tmp_path_factory.mktemp("sequences")
    repository, logs = root / "models", root / "logs"
    logs.mkdir()
    for name, source, delay_ms in (*((name, name, 0) for name in MODELS), ("running_sum_slow", "running_sum", 200)):
        shutil.copytree(SEQUENCE_MODELS / source, repository / name, symlinks=False)
        config = repository / name / "config.pbtxt"
        text = config.read_text()
        logged = text.replace(
            'key: "log_dir" value: { string_value: "" }', f'key: "log_dir" value: {{ string_value: "{logs}" }}'
        ).replace(
            'key: "delay_ms" value: { string_value: "0" }', f'key: "delay_ms" value: {{ string_value: "{delay_ms}" }}'
        )
        assert logged != text
        config.write_text(logged)
    with EmbeddedServer(builtin_models=[], model_repositories=[repository], pick_free_ports=True) as running:
        yield running, logs


def _fresh_log(logs: Path, model: str) -> Path:
    log = logs / f"{model}.log"
    if log.exists():
        log.write_text("")  # the model appends (O_APPEND): its next line lands at the new end
    return log


def server_view(log: Path, max_live: int | None = None) -> list[list[int]]:
    """Each sequence the model saw, as the values it summed; fails on any break of sequence discipline.

    A step the model refused is logged with no sum: a refused START still opened the sequence on the
    server (its batcher took it), a refused END still closed it.
    """
    live: dict[Any, list[int]] = {}
    ended = []
    for line in log.read_text().splitlines():
        corrid, start, end, value, total, _ = json.loads(line)
        if start:
            assert corrid not in live, f"START for {corrid}, which is still live: ids collided"
            live[corrid] = []
        else:
            assert corrid in live, f"a step of {corrid} without its START"
        if total is not None:
            live[corrid].append(value)
            assert total == sum(live[corrid]), f"{corrid}: sum {total} is not the sum of its steps {live[corrid]}"
        assert max_live is None or len(live) <= max_live, f"{len(live)} sequences live, at most {max_live} expected"
        if end:
            ended.append(live.pop(corrid))
    assert not live, f"sequences never ended (stale state on the server): {sorted(live)}"
    return ended


def settled_view(log: Path, max_live: int | None = None, within_s: float = 60.0) -> list[list[int]]:
    """``server_view`` once the model has worked through its queue: the last ENDs a client sent before
    it exited may still wait there, and a loaded machine can pause the model over a second."""
    deadline, size = time.monotonic() + within_s, -1
    while time.monotonic() < deadline and log.stat().st_size != size:
        size = log.stat().st_size
        time.sleep(1.0)
    while True:
        try:
            return server_view(log, max_live)
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def _ids(log: Path) -> set[Any]:
    return {json.loads(line)[0] for line in log.read_text().splitlines()}


def _check_levels(result: perfprobe.SweepResult) -> None:
    """No errors; sequences completed; per drained window, the server's successes are exactly ours."""
    target = result.model.name
    for row in result.rows:
        assert row["Errors"] == 0, row["Warnings"]
        assert row["Sequences/Second"] > 0 and row["Sequences Failed"] == 0
    for level in result.document["levels"]:
        for window in level["windows"]:
            assert window["sequences_completed"] >= 1
            if window["drained"]:
                assert window["server"][target]["counts"]["success"] == window["completed"]


MATRIX = [
    ("http", "sync", None, "closed"),
    ("http", "sync", "thread", "closed"),
    ("http", "async", None, "open"),
    ("grpc", "sync", None, "closed"),
    ("grpc", "async", None, "open"),
    ("grpc", "stream", None, "closed"),
    ("grpc", "stream", None, "open"),
    ("grpc", "sync", "asyncio", "open"),
]


@pytest.mark.parametrize(("protocol", "mode", "workers", "loop"), MATRIX)
def test_every_mode_and_protocol_drives_sequences_without_errors(
    sequence_server, protocol: str, mode: str, workers: str | None, loop: str
) -> None:
    server, logs = sequence_server
    log = _fresh_log(logs, "running_sum")
    load: dict[str, Any] = {"concurrency": "1:3"} if loop == "closed" else {"request_rate": 300, "num_of_sequences": 3}
    result = perfprobe.sweep(
        "running_sum",
        url=server.url(protocol),
        protocol=protocol,
        mode=mode,
        workers=workers,
        sequence_length=6,
        serial_sequences=mode == "stream",
        **load,
        **WINDOWS,
    )
    _check_levels(result)
    sequences = server_view(log, max_live=3)
    assert len(sequences) >= 10
    assert max(len(s) for s in sequences) <= 7  # 6 +/- 20%
    if loop == "open":  # at the schedule's rate, but for sends that went late and caught up (counted)
        level = result.document["levels"][0]
        reported = [w for w in level["windows"] if w["index"] in level["reported_windows"]]
        seconds = sum(w["duration_ns"] for w in reported) / 1e9
        late_per_s = sum(w["late_sends"] for w in reported) / seconds
        assert result.rows[0]["Inferences/Second"] == pytest.approx(300, abs=15 + late_per_s)


def test_data_file_sequences_play_each_stream_in_order_to_one_id(sequence_server, tmp_path: Path, protocol) -> None:
    server, logs = sequence_server
    streams = [[1, 2, 3, 4], [10, 20, 30], [100, 200]]
    data = tmp_path / "sequences.json"
    data.write_text(json.dumps({"data": [[{"VALUE": [v]} for v in stream] for stream in streams]}))
    log = _fresh_log(logs, "running_sum")
    result = perfprobe.sweep(
        "running_sum",
        url=server.url(protocol),
        protocol=protocol,
        concurrency="2",
        input_data=str(data),
        shared_memory="system" if protocol == "grpc" else "none",
        **WINDOWS,
    )
    _check_levels(result)
    assert result.document["settings"]["sequences"]["length"] == "from data"
    sequences = server_view(log, max_live=2)
    whole = [s for s in sequences if s in streams]
    assert len(whole) >= len(sequences) - 2  # only a stop's END may cut one short (one per worker)
    assert {tuple(s) for s in whole} == {tuple(s) for s in streams}  # every stream played, in round robin
    for cut in sequences:
        assert any(stream[: len(cut)] == cut for stream in streams), cut


def test_ids_stay_within_the_range_and_strings_when_asked(sequence_server) -> None:
    server, logs = sequence_server
    log = _fresh_log(logs, "running_sum")
    result = perfprobe.sweep(
        "running_sum", url=server.http_url, concurrency="3", sequence_id_range="1000:1004", sequence_length=3, **WINDOWS
    )
    _check_levels(result)
    server_view(log, max_live=3)
    assert _ids(log) == {1000, 1001, 1002, 1003}  # wrapped inside the range, END excluded

    log = _fresh_log(logs, "running_sum_strid")
    result = perfprobe.sweep(
        "running_sum_strid", url=server.grpc_url, protocol="grpc", concurrency="2", string_sequence_ids=True, **WINDOWS
    )
    _check_levels(result)
    server_view(log, max_live=2)
    assert all(isinstance(i, str) for i in _ids(log)) and result.document["settings"]["sequences"]["string_ids"]


def test_sequence_latency_covers_its_steps_and_gates_read_it(sequence_server, tmp_path: Path) -> None:
    server, _ = sequence_server
    result = perfprobe.sweep(
        "running_sum",
        url=server.http_url,
        concurrency="1",
        sequence_length=5,
        sequence_length_variation=0,
        output_dir=str(tmp_path),
        **WINDOWS,
    )
    _check_levels(result)
    for window in result.document["levels"][0]["windows"]:
        step_min = window["latency_us"]["min"]
        sequence = window["sequence_latency_us"]
        assert sequence["min"] >= 0.99 * 5 * step_min  # five steps one after another, each at least the fastest
        assert window["sequences_per_s"] == pytest.approx(
            window["completed"] / 5 / (window["duration_ns"] / 1e9), rel=0.25
        )
    row = result.rows[0]
    limit = f"sequence_p99<={row['Sequence p99 latency'] + 1}us"
    passing = run_perfprobe("gate", str(tmp_path), "-t", "sequence_rate>1", "-t", limit)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    failing = run_perfprobe("gate", str(tmp_path), "-t", f"sequence_rate>{row['Sequences/Second'] * 2}")
    assert failing.returncode == 6 and "sequence_rate" in failing.stdout, failing.stdout + failing.stderr


def test_a_failed_step_ends_its_sequence_and_keeps_the_servers_reason(sequence_server, tmp_path: Path) -> None:
    server, logs = sequence_server
    data = tmp_path / "failing.json"
    streams = [[1, -2, 3, 4], [-5, 6, 7]]  # a refused middle step; a refused START
    data.write_text(json.dumps({"data": [[{"VALUE": [v]} for v in stream] for stream in streams]}))
    log = _fresh_log(logs, "running_sum")
    result = perfprobe.sweep("running_sum", url=server.http_url, concurrency="1", input_data=str(data), **WINDOWS)
    row = result.rows[0]
    assert row["Errors"] > 0 and row["Sequences Failed"] > 0 and row["Sequences/Second"] == 0
    reasons = " ".join(r["reason"] for r in result.document["levels"][0]["error_reasons"])
    assert "negative VALUE -2 refused" in reasons and "negative VALUE -5 refused" in reasons
    assert "START" in reasons  # the END after a refused START: a sequence the model never had, refused
    sequences = server_view(log, max_live=1)  # every sequence ended, refused ones too: nothing stale
    assert [1, 3] in sequences  # the step after the failure carried END
    assert all(s in ([1, 3], [], [1]) for s in sequences)  # [] for a refused START; [1]: cut by the stop


def test_sequences_over_load_processes_use_disjoint_ids(sequence_server) -> None:
    server, logs = sequence_server
    log = _fresh_log(logs, "running_sum")
    result = perfprobe.sweep(
        "running_sum", url=server.grpc_url, protocol="grpc", concurrency="4", processes=2, sequence_length=4, **WINDOWS
    )
    _check_levels(result)
    server_view(log, max_live=4)
    ids = _ids(log)
    assert {i % 2 for i in ids} == {0, 1}  # each process its own residue: ids never collide


def test_a_step_of_an_unknown_sequence_is_refused_with_the_servers_reason(sequence_server) -> None:
    server, _ = sequence_server
    value = np.array([[1]], dtype=np.int32)
    with make_client("http", server.http_url) as client, pytest.raises(InferenceServerError, match="START"):
        client.infer(
            "running_sum", [InferInput("VALUE", value, "INT32", shape=[1, 1])], options=RequestOptions(sequence_id=99)
        )


def test_a_trace_paces_a_sequence_model(sequence_server, tmp_path: Path) -> None:
    server, logs = sequence_server
    trace = tmp_path / "trace.jsonl"
    trace.write_text("".join(json.dumps({"timestamp_ms": i * 4.0}) + "\n" for i in range(250)))
    log = _fresh_log(logs, "running_sum")
    result = perfprobe.sweep(
        "running_sum",
        url=server.grpc_url,
        protocol="grpc",
        request_trace=str(trace),
        num_of_sequences=3,
        **{**WINDOWS, "measurement_interval": 500},
    )
    level = result.document["levels"][0]
    assert level["trace"]["replayed"] == 1.0
    assert sum(w["completed"] for w in level["windows"]) == 250 and result.rows[0]["Errors"] == 0
    server_view(log, max_live=3)  # every sequence ended once the trace was replayed


@pytest.mark.parametrize("loop", [False, True])
def test_a_trace_that_names_its_sequences_is_replayed_step_by_step(sequence_server, tmp_path: Path, loop: bool) -> None:
    server, logs = sequence_server
    lines = []
    for step in range(4):  # three sequences, interleaved: 7 sends 1 2 3 4, 8 sends 10 20 30 40, 9 sends 100 ...
        for offset, sequence_id in enumerate((7, 8, 9)):
            value = (step + 1) * 10**offset
            lines.append(
                {"timestamp_ms": (step * 3 + offset) * 2.0, "sequence_id": sequence_id, "inputs": {"VALUE": [value]}}
            )
    trace = tmp_path / "sequences.jsonl"
    trace.write_text("".join(json.dumps(line) + "\n" for line in lines))
    log = _fresh_log(logs, "running_sum")
    result = perfprobe.sweep("running_sum", url=server.http_url, request_trace=str(trace), trace_loop=loop, **WINDOWS)
    assert result.rows[0]["Errors"] == 0 and result.rows[0]["Sequences Failed"] == 0, result.rows[0]["Warnings"]
    sequences = server_view(log, max_live=3)
    assert _ids(log) == {7, 8, 9}
    whole = {(1, 2, 3, 4), (10, 20, 30, 40), (100, 200, 300, 400)}
    assert {tuple(s) for s in sequences[:3]} == whole, sequences[:12]
    if loop:  # lap after lap, each id's sequence again; a stop may cut the last ones short, with END
        assert len(sequences) > 3
        assert all(any(w[: len(s)] == tuple(s) for w in whole) for s in sequences), [
            s for s in sequences if not any(w[: len(s)] == tuple(s) for w in whole)
        ]
    else:
        assert len(sequences) == 3 and result.document["levels"][0]["trace"]["replayed"] == 1.0


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_ctrl_c_still_ends_the_live_sequences(sequence_server, tmp_path: Path, protocol: str) -> None:
    server, logs = sequence_server
    log = _fresh_log(logs, "running_sum")
    command = perfprobe_command(
        "sweep", "-i", protocol, "-u", server.url(protocol), "-m", "running_sum", "--concurrency", "3",
        "--sequence-length", "500", "--sequence-length-variation", "0", "--measurement-interval", "5000",
        "--output-dir", str(tmp_path), "--no-report",
    )  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and log.stat().st_size < 20_000:  # well into the first window
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == exitcodes.INTERRUPTED, err
    sequences = settled_view(log, max_live=3)  # nothing left open on the server
    # every finished sequence has exactly 500 steps; the three live at the interrupt got their END early
    # (they run in step, so a length the interrupt could land right after would hide the cut: 500 makes it rare)
    assert any(len(s) < 500 for s in sequences), [len(s) for s in sequences]


def test_timed_out_steps_still_end_their_sequences(sequence_server) -> None:
    server, logs = sequence_server
    log = _fresh_log(logs, "running_sum_slow")  # 200 ms per execution, the client gives up after 100
    with pytest.raises(AllRequestsFailed) as failed:
        perfprobe.sweep(
            "running_sum_slow",
            url=server.http_url,
            concurrency="2",
            sequence_length=4,
            request_timeout=0.1,
            measurement_interval=500,
            stability_windows=2,
            max_trials=2,
            no_report=True,
        )
    row = failed.value.result.rows[0]
    assert row["Errors"] > 0 and row["Completed"] == 0 and row["Sequences Failed"] > 0
    assert "TIMEOUT" in row["Warnings"]
    sequences = settled_view(log)  # each timed-out sequence got its END: nothing stale on the server
    assert sequences and all(len(s) <= 2 for s in sequences)  # a timed-out step, then END
