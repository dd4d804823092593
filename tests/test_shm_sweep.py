"""Sweeps with --shared-memory system: correct results, nothing left behind on any exit path."""

from __future__ import annotations

import csv
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import own_segments, perfprobe_command

from perfprobe import exitcodes
from perfprobe.client import make_client
from perfprobe.shm.system import leftover_segments

FAST = ["--measurement-interval", "300", "--stability-windows", "2", "--max-trials", "2"]


def _command(url: str, protocol: str, out: Path, *args: str) -> list[str]:
    sweep = ("sweep", "-i", protocol, "-u", url, "--output-dir", str(out), "--shared-memory", "system", *args)
    return perfprobe_command(*sweep)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _our_regions(server) -> list[str]:
    with make_client("http", server.http_url) as client:
        return [name for name in client.system_shared_memory_status() if name.startswith("perfprobe_")]


@pytest.mark.parametrize(("protocol", "workers"), [("http", "greenlet"), ("grpc", "thread"), ("grpc", "asyncio")])
def test_shm_sweep_runs_and_cleans_up(server, tmp_path: Path, protocol: str, workers: str) -> None:
    before = set(leftover_segments())
    result = subprocess.run(
        _command(
            server.url(protocol),
            protocol,
            tmp_path,
            "-m",
            "simple",
            "--concurrency",
            "1:3",
            "--workers",
            workers,
            *FAST,
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "tensors via system" in result.stdout
    rows = _rows(tmp_path / "results.csv")
    assert len(rows) == 3 and all(row["Errors"] == "0" for row in rows)
    assert set(leftover_segments()) == before
    assert _our_regions(server) == []


def test_variable_output_needs_a_size(server, tmp_path: Path) -> None:
    result = subprocess.run(
        _command(server.http_url, "http", tmp_path, "-m", "identity", "--shape", "INPUT0:16", *FAST),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == exitcodes.USAGE
    assert "--output-shared-memory-size" in result.stderr.strip()


def test_two_runs_at_once_do_not_interfere(server, tmp_path: Path) -> None:
    before = set(leftover_segments())
    runs = [
        subprocess.Popen(
            _command(
                server.http_url,
                "http",
                tmp_path / str(i),
                "-m",
                "identity",
                "--shape",
                "INPUT0:4096",
                "--output-shared-memory-size",
                "16384",
                "--concurrency",
                "2",
                *FAST,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    for i in range(2):
        (row,) = _rows(tmp_path / str(i) / "results.csv")
        assert float(row["Inferences/Second"]) > 0 and row["Errors"] == "0"
    assert _our_regions(server) == []
    assert set(leftover_segments()) == before  # neither run left a segment, whatever others hold


def test_sigterm_mid_sweep_cleans_up(server, tmp_path: Path) -> None:
    process = subprocess.Popen(
        _command(
            server.http_url,
            "http",
            tmp_path,
            "-m",
            "simple",
            "--concurrency",
            "1:4",
            "--measurement-interval",
            "2000",
            "--max-trials",
            "5",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _our_regions(server):
        time.sleep(0.05)
    assert _our_regions(server), "the sweep never registered its regions"
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == exitcodes.INTERRUPTED, err
    assert _our_regions(server) == []
    assert own_segments(process.pid, "sweep") == [], err


def test_server_killed_mid_sweep_still_unlinks(tmp_path: Path) -> None:
    from perfprobe.server import EmbeddedServer

    with EmbeddedServer(builtin_models=["simple"], pick_free_ports=True) as doomed:
        process = subprocess.Popen(
            _command(
                doomed.http_url,
                "http",
                tmp_path,
                "-m",
                "simple",
                "--concurrency",
                "2",
                "--measurement-interval",
                "1000",
                "--max-trials",
                "10",
                "--request-timeout",
                "3",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not own_segments(process.pid, "sweep"):
            time.sleep(0.05)
        time.sleep(1.0)
        doomed.kill()
        _, err = process.communicate(timeout=120)
    assert own_segments(process.pid, "sweep") == [], err
