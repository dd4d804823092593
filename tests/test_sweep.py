"""perfprobe sweep against the real embedded Triton: every mode, protocol and worker kind."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import perfprobe_command, run_perfprobe, slowed_simple

from perfprobe import exitcodes

FAST = ["--measurement-interval", "300", "--stability-windows", "2", "--max-trials", "3"]

COMBINATIONS = [
    ("http", "sync", "greenlet"),
    ("http", "sync", "thread"),
    ("http", "async", "greenlet"),
    ("http", "async", "thread"),
    ("grpc", "sync", "thread"),
    ("grpc", "sync", "greenlet"),
    ("grpc", "async", "thread"),
    ("grpc", "async", "greenlet"),
    ("grpc", "stream", "thread"),
    ("grpc", "stream", "greenlet"),
    ("grpc", "sync", "asyncio"),
    ("grpc", "stream", "asyncio"),
    ("grpc", "sync", "thread+grpcio"),  # WORKERS+TRANSPORT: through grpcio instead of perfprobe's HTTP/2
    ("grpc", "async", "greenlet+grpcio"),
    ("grpc", "stream", "thread+grpcio"),
]

# perf_analyzer's -f CSV columns, in its order: ours come first, so its users' scripts read our CSV
PERF_ANALYZER_COLUMNS = [
    "Inferences/Second", "Client Send", "Network+Server Send/Recv", "Server Queue", "Server Compute Input",
    "Server Compute Infer", "Server Compute Output", "Client Recv", "p50 latency", "p90 latency", "p95 latency",
    "p99 latency",
]  # fmt: skip


def worker_options(workers: str) -> list[str]:
    """``--workers`` (and ``--grpc-transport``) for a COMBINATIONS entry's WORKERS[+TRANSPORT]."""
    kind, _, transport = workers.partition("+")
    return ["--workers", kind, *(["--grpc-transport", transport] if transport else [])]


def run_sweep(server, protocol: str, out: Path, *args: str, timeout: float = 240):
    sweep = ("sweep", "-i", protocol, "-u", server.url(protocol), "--output-dir", str(out), *args)
    result = run_perfprobe(*sweep, timeout=timeout)
    rows = []
    document = None
    if (out / "results.csv").exists():
        with (out / "results.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        document = json.loads((out / "results.json").read_text())
    return result, rows, document


@pytest.mark.parametrize(("protocol", "mode", "workers"), COMBINATIONS)
def test_sweep_every_combination(server, tmp_path: Path, protocol: str, mode: str, workers: str) -> None:
    result, rows, document = run_sweep(
        server,
        protocol,
        tmp_path,
        "-m",
        "simple",
        "--concurrency",
        "1:4",
        "--mode",
        mode,
        *worker_options(workers),
        *FAST,
    )
    assert result.returncode == 0, result.stderr
    assert "report not written" not in result.stderr and (tmp_path / "charts" / "percentile_spectrum.png").is_file()
    header = list(rows[0].keys())
    assert header[:13] == ["Concurrency", *PERF_ANALYZER_COLUMNS]
    assert [int(r["Concurrency"]) for r in rows] == [1, 2, 3, 4]
    for row in rows:
        assert float(row["Inferences/Second"]) > 0
        assert int(row["Errors"]) == 0
        assert int(row["p50 latency"]) <= int(row["p90 latency"]) <= int(row["p99 latency"])
        assert row["Stable"] in ("yes", "no")
    for level in document["levels"]:
        for window in level["windows"]:
            server_delta = window["server"]["simple"]
            # windows are drained at their boundary: the server saw exactly the requests we completed
            assert window["drained"]
            assert server_delta["counts"]["success"] == window["completed"]
            # the client's latency includes the server's time for the same requests
            server_us = server_delta["ns"]["success"] / server_delta["counts"]["success"] / 1000
            assert window["latency_us"]["mean"] >= server_us
    assert document["model"]["name"] == "simple" and document["server"]["version"] == server.version
    assert document["schema_version"] == 2
    assert document["settings"]["mode"] == mode and document["settings"]["protocol"] == protocol
    http_async = protocol == "http" and mode == "async"  # runs on greenlets, whatever was asked
    kind, _, transport = workers.partition("+")
    assert document["settings"]["worker_kind"] == ("greenlet" if http_async else kind)
    if protocol == "grpc" and kind != "asyncio":
        assert document["settings"]["grpc_transport"] == (transport or "h2")


@pytest.mark.parametrize(
    ("rate", "protocol", "workers", "extra"),
    [
        (100, "http", "greenlet", ()),
        (300, "http", "greenlet", ()),
        (300, "http", "thread", ("--send-spin", "200")),  # the last 200 µs before each send yielded through
        (300, "grpc", "asyncio", ()),
    ],
)
def test_request_rate_is_held(
    server, tmp_path: Path, rate: int, protocol: str, workers: str, extra: tuple[str, ...]
) -> None:
    result, rows, _ = run_sweep(
        server,
        protocol,
        tmp_path,
        "-m",
        "simple",
        "--workers",
        workers,
        *extra,
        "--request-rate",
        str(rate),
        "--measurement-interval",
        "2000",
        "--stability-windows",
        "2",
        "--max-trials",
        "2",
    )
    assert result.returncode == 0, result.stderr
    assert "report not written" not in result.stderr and f"rate={rate}" in (tmp_path / "summary.md").read_text()
    (row,) = rows
    assert float(row["Request Rate"]) == rate
    assert float(row["Inferences/Second"]) == pytest.approx(rate, rel=0.05)
    assert row["Intended p50 latency"] != "" and row["Late Sends"] != ""


def test_intended_time_latency_shows_stalls(server, tmp_path: Path) -> None:
    """A server that stalls now and then: measured from the intended send time, the tail grows."""
    result, rows, document = run_sweep(
        server,
        "http",
        tmp_path,
        "-m",
        "stall_sometimes",
        "--shape",
        "INPUT0:4",
        "--request-rate",
        "60",
        "--max-inflight",
        "1",
        "--measurement-interval",
        "2000",
        "--stability-windows",
        "2",
        "--max-trials",
        "2",
    )
    assert result.returncode == 0, result.stderr
    (row,) = rows
    # under 1% of executions stall, so the actual-send p99 stays low; each stall holds back the
    # ~9 sends scheduled behind it, which only the intended-time p99 sees
    assert int(row["Intended p99 latency"]) > 2 * int(row["p99 latency"])
    assert int(row["Late Sends"]) > 0
    held = float(row["Inferences/Second"]) >= 0.95 * 60
    assert ("fell behind schedule" if held else "could not keep 60 req/s") in row["Warnings"]
    assert document["levels"][0]["windows"][0]["intended_histogram"]["count"] > 0


def test_json_data_file_drives_the_inputs(server, tmp_path: Path) -> None:
    from perfprobe.client import make_client
    from perfprobe.load import dataset

    data = {
        "data": [
            {"INPUT0": list(range(16)), "INPUT1": {"content": [2] * 16, "shape": [16]}},
            {
                "INPUT0": [7] * 16,
                "INPUT1": {"b64": __import__("base64").b64encode(np.full(16, 5, "<i4").tobytes()).decode()},
            },
        ]
    }
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    with make_client("http", server.http_url) as client:
        model = client.describe_model("simple")
        items = dataset.load_items(model, dataset.DataOptions(source=str(path)))
        requests = dataset.build_requests(client, model, items)
        first, second = (client.send(request) for request in requests)
    np.testing.assert_array_equal(first.as_numpy("OUTPUT0"), [np.arange(16) + 2])
    np.testing.assert_array_equal(second.as_numpy("OUTPUT1"), [np.full(16, 2)])
    result, rows, _ = run_sweep(
        server, "grpc", tmp_path / "out", "-m", "simple", "--input-data", str(path), "--concurrency", "2", *FAST
    )
    assert result.returncode == 0, result.stderr
    assert int(rows[0]["Errors"]) == 0


@pytest.mark.parametrize(
    ("workers", "transport"), [("thread", "h2"), ("greenlet", "h2"), ("thread", "grpcio"), ("asyncio", "h2")]
)
def test_decoupled_model_in_stream_mode(server, tmp_path: Path, workers: str, transport: str) -> None:
    path = tmp_path / "count.json"
    path.write_text(json.dumps({"data": [{"COUNT": [3], "DELAY_MS": [2]}]}))
    result, rows, _ = run_sweep(
        server,
        "grpc",
        tmp_path / "out",
        "-m",
        "repeat_decoupled",
        "--mode",
        "stream",
        "--input-data",
        str(path),
        "--concurrency",
        "1",
        "--workers",
        workers,
        "--grpc-transport",
        transport,
        *FAST,
    )
    assert result.returncode == 0, result.stderr
    (row,) = rows
    assert int(row["First Response p50"]) >= 2000
    assert int(row["Inter-Response p50"]) >= 2000
    assert float(row["Responses/Second"]) == pytest.approx(3 * float(row["Inferences/Second"]), rel=0.05)


def test_config_file_with_flag_override(server, tmp_path: Path) -> None:
    config = tmp_path / "sweep.yaml"
    config.write_text("model: simple\nconcurrency: '1:2'\nmeasurement-interval: 300\nmax_trials: 2\n")
    result, rows, document = run_sweep(server, "http", tmp_path / "out", "--config", str(config), "--concurrency", "3")
    assert result.returncode == 0, result.stderr
    assert [r["Concurrency"] for r in rows] == ["3"]
    assert document["settings"]["window_ms"] == 300 and document["settings"]["max_windows"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "simple", "--concurrency", "1:0"], "end 0 is below start 1"),
        (["-m", "simple", "--mode", "warp"], "invalid choice: 'warp'"),
        (["-m", "simple", "--mode", "stream"], "needs gRPC"),
        (["-m", "identity", "--concurrency", "1"], "--shape INPUT0"),
        (["-m", "simple", "--binary-search"], "--latency-threshold"),
        (["-m", "repeat_decoupled"], "decoupled"),
        (["-m", "simple", "--input-data", "/no/such/file.json"], "--input-data"),
    ],
)
def test_bad_arguments(server, tmp_path: Path, args: list[str], message: str) -> None:
    result, _, _ = run_sweep(server, "http", tmp_path, *args, *FAST)
    assert result.returncode == exitcodes.USAGE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_interrupt_keeps_what_was_measured(server, tmp_path: Path) -> None:
    import signal
    import time

    command = perfprobe_command(
        "sweep",
        "-m",
        "simple",
        "-u",
        server.http_url,
        "--concurrency",
        "1:3",
        "--measurement-interval",
        "300",
        "--stability-windows",
        "2",
        "--max-trials",
        "2",
        "--output-dir",
        str(tmp_path),
    )
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _rows(tmp_path):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == exitcodes.INTERRUPTED, err
    rows = _rows(tmp_path)
    assert 1 <= len(rows) < 3 and rows[0]["Concurrency"] == "1"
    document = json.loads((tmp_path / "results.json").read_text())
    assert "finished_at" in document and len(document["levels"]) == len(rows)


def _rows(folder: Path) -> list[dict[str, str]]:
    path = folder / "results.csv"
    if not path.exists():
        return []
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_latency_threshold_and_binary_search(server, tmp_path: Path) -> None:
    """simple with a 20 ms delay, one instance: latency grows ~20 ms per extra request in flight."""
    with slowed_simple(server, 20) as slow:
        result, rows, _ = run_sweep(
            slow,
            "http",
            tmp_path,
            "-m",
            "simple",
            "--concurrency",
            "1:8",
            "--latency-threshold",
            "50",
            "--binary-search",
            *FAST,
        )
    assert result.returncode == 0, result.stderr
    levels = [int(r["Concurrency"]) for r in rows]
    assert levels[:2] == [1, 8] and len(levels) <= 5  # ends, then bisection: not all eight levels
    assert "highest concurrency under 50 ms: 2" in result.stdout
