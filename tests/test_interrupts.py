"""Ctrl-C and SIGTERM: one line, exit 130, results kept, and no shared memory left on any path."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import own_segments, perfprobe_command

from perfprobe import exitcodes
from perfprobe.client import make_client
from perfprobe.interrupts import shielded

REPO = Path(__file__).resolve().parents[1]


def _our_regions(server) -> list[str]:
    with make_client("http", server.http_url) as client:
        return [name for name in client.system_shared_memory_status() if name.startswith("perfprobe_")]


def _successes(server, model: str) -> int:
    with make_client("http", server.http_url) as client:
        stats = client.inference_statistics(model)["model_stats"][0]
        return int(stats["inference_stats"]["success"]["count"])


def _wait_for(condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not condition():
        time.sleep(0.02)
    assert condition(), "the run never got that far"


def test_signals_during_cleanup_are_held_back_then_raised() -> None:
    with pytest.raises(KeyboardInterrupt), shielded(lambda: []):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler has run by now, and raised nothing here
        finished = True
    assert finished


def test_a_third_signal_forces_exit_saying_what_is_left() -> None:
    script = (
        "import os, signal, time\n"
        "from perfprobe.interrupts import shielded\n"
        "with shielded(lambda: ['perfprobe_x_region1']):\n"
        "    os.kill(os.getpid(), signal.SIGINT); time.sleep(0.05)\n"
        "    os.kill(os.getpid(), signal.SIGTERM); time.sleep(5)\n"
        "print('not reached')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == exitcodes.INTERRUPTED
    assert "not reached" not in result.stdout
    assert result.stderr.strip() == (
        "perfprobe: error: interrupted again during clean-up: forced exit; left behind: perfprobe_x_region1"
    )


def test_a_late_signal_after_the_interrupt_does_not_change_the_exit_code() -> None:
    script = (
        "import os, signal, sys, time\n"
        "from perfprobe.interrupts import signals_as_interrupt\n"
        "try:\n"
        "    with signals_as_interrupt():\n"
        "        os.kill(os.getpid(), signal.SIGTERM); time.sleep(5)\n"
        "except KeyboardInterrupt:\n"
        "    os.kill(os.getpid(), signal.SIGTERM); os.kill(os.getpid(), signal.SIGINT); time.sleep(0.2)\n"
        "    sys.exit(130)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == exitcodes.INTERRUPTED, result.stderr


def test_a_signal_landing_in_a_greenlet_worker_is_raised_in_the_main_greenlet() -> None:
    """Ctrl-C while a greenlet worker runs Python code: raised there, it could cut a step's bookkeeping in
    half (CI: a sequence taken and never settled, so never ended on the server). The worker runs on to
    the end of what it was doing; the main greenlet gets the KeyboardInterrupt at its next wait. A second
    signal landing in a worker while the main greenlet cleans up does not cut that clean-up short."""
    script = (
        "import os, signal, time, gevent\n"
        "from perfprobe.interrupts import signals_as_interrupt\n"
        "said = []\n"
        "def worker(sig):\n"
        "    os.kill(os.getpid(), sig)  # the handler runs at this worker's next bytecode\n"
        "    end = time.monotonic() + 0.05\n"
        "    while time.monotonic() < end: pass\n"
        "    said.append('worker done')\n"
        "with signals_as_interrupt():\n"
        "    try:\n"
        "        gevent.spawn(worker, signal.SIGINT)\n"
        "        for _ in range(100): gevent.sleep(0.01)\n"
        "        said.append('main never interrupted')\n"
        "    except KeyboardInterrupt:\n"
        "        said.append('main interrupted')\n"
        "        gevent.spawn(worker, signal.SIGTERM)\n"
        "        for _ in range(10): gevent.sleep(0.01)  # the clean-up's waits\n"
        "        said.append('clean-up done')\n"
        "print(said)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    expected = "['worker done', 'main interrupted', 'worker done', 'clean-up done']"
    assert result.stdout.strip() == expected, result.stdout + result.stderr


CLOSED = ("--concurrency", "4")
OPEN = ("--request-rate", "300")  # workers asleep on their timerfds between sends, woken by the stop


@pytest.mark.parametrize(
    ("sig", "protocol", "mode", "workers", "load"),
    [
        (signal.SIGINT, "http", "sync", "greenlet", CLOSED),
        (signal.SIGTERM, "http", "sync", "greenlet", CLOSED),
        (signal.SIGINT, "http", "sync", "thread", CLOSED),  # HTTP's default at up to 4 in flight per process
        (signal.SIGINT, "grpc", "sync", "asyncio", CLOSED),
        (signal.SIGINT, "grpc", "sync", "greenlet", CLOSED),  # perfprobe's own HTTP/2 connections
        (signal.SIGTERM, "grpc", "sync", "thread", CLOSED),
        (signal.SIGINT, "grpc", "stream", "greenlet", CLOSED),
        (signal.SIGINT, "http", "sync", "greenlet", OPEN),
        (signal.SIGTERM, "http", "sync", "thread", OPEN),
        (signal.SIGINT, "grpc", "sync", "asyncio", OPEN),
    ],
)
def test_sweep_interrupted_says_one_line(
    server, tmp_path: Path, sig: signal.Signals, protocol: str, mode: str, workers: str, load: tuple[str, ...]
) -> None:
    process = subprocess.Popen(
        perfprobe_command(
            "sweep", "-i", protocol, "-u", server.url(protocol), "-m", "simple", *load,
            "--mode", mode, "--workers", workers,
            "--measurement-interval", "400", "--max-trials", "50", "--stability-percentage", "0.001",
            "--no-report", "--output-dir", str(tmp_path),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    before = _successes(server, "simple")
    _wait_for(lambda: _successes(server, "simple") > before + 300 or process.poll() is not None)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == exitcodes.INTERRUPTED, stderr
    assert stderr.strip() == "interrupted: results measured so far are written", stderr


def test_compare_stops_on_ctrl_c_and_keeps_the_finished_cells(server, tmp_path: Path) -> None:
    process = subprocess.Popen(
        perfprobe_command(
            "compare", "-u", server.http_url, "-m", "identity", "--sizes", "64KiB,256KiB,1MiB",
            "--transports", "none,system", "--concurrency", "1", "--measurement-interval", "300",
            "--max-trials", "2", "--no-report", "--output-dir", str(tmp_path),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    second_cell = tmp_path / "system-65536" / "results.csv"
    _wait_for(second_cell.exists)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == exitcodes.INTERRUPTED, stderr
    rows = (tmp_path / "compare.csv").read_text().splitlines()
    assert rows[1].startswith("wire,65536,1,")  # the first cell, finished before the signal, is kept
    assert not any(line.startswith(("wire,1048576", "system shm,1048576")) for line in rows)  # nothing after it
    assert own_segments(process.pid, "sweep") == []


def test_a_ctrl_c_while_a_compare_finishes_its_cells_keeps_their_rows(server, tmp_path: Path, monkeypatch) -> None:
    """A Ctrl-C that lands while a size's cells write their files (CI caught one there, and compare.csv came
    out with its header alone): every cell still finishes its files, and the matrix has their rows."""
    import perfprobe
    from perfprobe.errors import RunInterrupted
    from perfprobe.runs.sweep import SweepSession

    finish = SweepSession.save
    saved: list[str] = []

    def interrupted_on_the_first(session: SweepSession) -> None:
        saved.append(session.plan.shared_memory)
        if len(saved) == 1:
            raise KeyboardInterrupt  # the signal, arriving as the first cell's files are written
        finish(session)

    monkeypatch.setattr(SweepSession, "save", interrupted_on_the_first)
    with pytest.raises(RunInterrupted) as stopped:
        perfprobe.compare(
            "identity", url=server.http_url, transports="none,system", sizes="4KiB,64KiB", concurrency="1",
            measurement_interval=200, max_trials=2, no_report=True, output_dir=str(tmp_path),
        )  # fmt: skip
    assert saved == ["none", "system"]  # the second cell's files were finished too
    rows = (tmp_path / "compare.csv").read_text().splitlines()
    assert [row.split(",")[:2] for row in rows[1:]] == [["wire", "4096"], ["system shm", "4096"]], rows
    assert stopped.value.result.rows[1]["Speed-up"] != ""  # a whole row, not a stub
    assert not (tmp_path / "none-65536").exists()  # the next size never started


def test_sigterm_during_infer_with_system_shm_leaves_nothing(server, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for index in range(60):
        shutil.copy(REPO / "docs" / "sample.jpg", images / f"sample{index:02d}.jpg")
    process = subprocess.Popen(
        perfprobe_command("infer", "-u", server.http_url, "-m", "resnet50", "--shared-memory", "system", str(images)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for(lambda: own_segments(process.pid, "infer") or process.poll() is not None)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == exitcodes.INTERRUPTED, stderr
    assert own_segments(process.pid, "infer") == []
    assert [name for name in _our_regions(server) if "_infer_" in name] == []


@pytest.mark.parametrize("concurrency", [64, 4])  # greenlet workers; thread workers (HTTP at up to 4 in flight)
def test_two_signals_in_quick_succession_leave_no_shared_memory(server, tmp_path: Path, concurrency: int) -> None:
    process = subprocess.Popen(
        perfprobe_command(
            "sweep", "-u", server.http_url, "-m", "simple", "--shared-memory", "system", "--concurrency",
            str(concurrency), "--measurement-interval", "2000", "--max-trials", "5", "--no-report",
            "--output-dir", str(tmp_path),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for(lambda: len([r for r in _our_regions(server) if "_sweep_" in r]) >= concurrency)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    time.sleep(0.015)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == exitcodes.INTERRUPTED, stderr
    assert own_segments(process.pid, "sweep") == []
    assert [name for name in _our_regions(server) if "_sweep_" in name] == []


@pytest.fixture(scope="module")
def silent_port() -> object:
    """A fake server: a port that accepts connections and never answers a byte."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for conn in accepted:
        conn.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize(
    "command",
    [("describe", "-m", "simple"), ("sweep", "-m", "simple", "--concurrency", "1"), ("infer", "-m", "simple"),
     ("models",), ("describe", "-i", "grpc", "-m", "simple")],
    ids=["describe", "sweep", "infer", "models", "describe-grpc"],
)  # fmt: skip
def test_a_signal_while_a_control_call_waits_on_a_silent_server_stops_at_once(
    silent_port: str, command: tuple[str, ...], signum: int
) -> None:
    """Faults round two, item 14: within a second or two, one line, exit 130 (not after the call's timeout)."""
    process = subprocess.Popen(
        perfprobe_command(*command, "-u", silent_port), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(1.5)  # connected, waiting for an answer that never comes
    assert process.poll() is None
    sent = time.monotonic()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - sent < 3.0
    assert process.returncode == exitcodes.INTERRUPTED
    assert stderr.strip().splitlines() == ["perfprobe: error: interrupted"]
