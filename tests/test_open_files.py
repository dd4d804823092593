"""A load with more requests in flight than the soft open-files limit allows (often 1,024).

Each request in flight holds a socket (and in open loop a timerfd): the load raises the soft
limit as far as it needs, and a load the hard limit cannot hold is refused in one line.
"""

from __future__ import annotations

import json
import resource
import subprocess
from pathlib import Path

import pytest
from conftest import perfprobe_command

from perfprobe import exitcodes
from perfprobe.load.open_files import ensure_open_files, files_needed


def _run_with_limits(soft: int, hard: int, *args: str) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return subprocess.run(
        perfprobe_command(*args), capture_output=True, text=True, timeout=240, check=False, preexec_fn=limit
    )


@pytest.mark.parametrize(
    "load",
    [
        ("--concurrency", "300"),
        ("--request-rate", "300", "--max-inflight", "300"),
        # two models' open loops in one process: the limit must hold both, not the larger of the two
        ("--request-rate", "100", "--max-inflight", "150", "-m", "fixed_delay@rate=50", "--shape", "INPUT0:16"),
        # 95 sockets fit 256 files; their 96 shared-memory regions' descriptors do not (faults round two, item 10)
        ("--concurrency", "95", "--shared-memory", "system"),
    ],
    ids=["closed-loop", "open-loop", "two-models", "shared-memory"],
)
def test_a_load_beyond_the_soft_limit_raises_it_and_runs(server, tmp_path: Path, load: tuple[str, ...]) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < files_needed(300):
        pytest.skip(f"this machine's hard limit ({hard}) is below what the test needs")
    result = _run_with_limits(
        256,
        hard,
        "sweep", "-u", server.http_url, "-m", "simple", *load, "--measurement-interval", "1000",
        "--stability-percentage", "1000", "--max-trials", "3", "--no-report", "--output-dir", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "results.json").read_text())
    windows = document["levels"][0]["windows"]
    assert sum(w["completed"] for w in windows) > 0
    assert not any(w["errors"] for w in windows)  # no connection failed for want of a file


def test_a_load_beyond_the_hard_limit_is_refused_in_one_line(server, tmp_path: Path) -> None:
    result = _run_with_limits(
        256, 300, "sweep", "-u", server.http_url, "-m", "simple", "--concurrency", "300", "--output-dir", str(tmp_path)
    )
    assert result.returncode == exitcodes.USAGE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "open files" in lines[0] and "--processes" in lines[0], result.stderr


def test_enough_files_leave_the_limit_as_it_is() -> None:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    ensure_open_files(1)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before
