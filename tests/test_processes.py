"""``--processes N``: load from several processes, measured as one (real server)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import assert_model_rates, own_segments, perfprobe_command, run_perfprobe

import perfprobe
from perfprobe import exitcodes
from perfprobe.client import make_client
from perfprobe.measure.histogram import LatencyHistogram

SHORT = {"measurement_interval": 500, "stability_windows": 2, "max_trials": 3}


def _load_processes(parent: int) -> list[int]:
    """The load processes a perfprobe command started (children running perfprobe.spread.channel)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"perfprobe.spread.channel" in cmdline:
            found.append(int(entry))
    return found


def _our_regions(server) -> list[str]:
    with make_client("http", server.http_url) as client:
        return [name for name in client.system_shared_memory_status() if name.startswith("perfprobe_")]


def _wait_for(condition, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not condition():
        time.sleep(0.05)
    assert condition(), "the run never got that far"


def test_two_processes_closed_loop_count_and_merge_exactly(server, protocol: str) -> None:
    result = perfprobe.sweep(
        "simple", url=server.url(protocol), protocol=protocol, processes=2, concurrency="3", **SHORT
    )
    level = result.level_results[0]
    assert result.document["settings"]["processes"] == 2
    for window in level.windows:
        assert window.drained
        assert sorted(share.index for share in window.shares) == [0, 1]  # 3 in flight: shares 2 and 1
        assert window.server["simple"].success_count == window.stats.completed > 0
        assert sum(share.completed for share in window.shares) == window.stats.completed
        union = LatencyHistogram()
        for share in window.shares:
            union.merge(LatencyHistogram.decode(share.latency))
        assert union.summary() == window.stats.latency.summary()
    per_process = result.document["levels"][0]["processes"]
    assert [entry["process"] for entry in per_process] == [0, 1]
    assert sum(entry["requests"] for entry in per_process) == level.merged().completed
    assert all(entry["client_cpu_us_per_request"] > 0 and entry["host"] for entry in per_process)


@pytest.mark.parametrize("distribution", ["constant", "poisson"])
def test_two_processes_open_loop_hold_the_rate(server, protocol: str, distribution: str) -> None:
    rate = 1000.0  # 4000 sends in the two reported windows: Poisson's own spread is 1.6%, a third of the bar
    result = perfprobe.sweep(
        "simple",
        url=server.url(protocol),
        protocol=protocol,
        processes=2,
        request_rate=str(rate),
        distribution=distribution,
        measurement_interval=2000,
        stability_windows=2,
        max_trials=2,
    )
    level = result.level_results[0]
    merged = level.merged()
    achieved = (merged.completed + merged.error_count) / (merged.duration_ns / 1e9)
    assert abs(achieved - rate) / rate < 0.05, achieved
    assert merged.intended is not None and merged.intended.count == merged.completed  # latency from intended times
    shares = level.shares()
    assert [share.index for share in shares] == [0, 1]
    assert all(share.completed > 0.3 * merged.completed for share in shares)  # each process sends its part


def test_the_split_keeps_exactly_c_requests_in_flight(server) -> None:
    """``fixed_delay`` serves four at once, 25 ms each: throughput follows the requests in flight."""
    result = perfprobe.sweep(
        "fixed_delay",
        url=server.http_url,
        processes=2,
        concurrency="1:3",
        shape=["INPUT0:4"],
        measurement_interval=1000,
        stability_windows=2,
        max_trials=3,
    )
    for level in result.level_results:
        merged = level.merged()
        throughput = merged.throughput()
        in_flight = throughput * merged.latency.mean_us / 1e6  # Little's law
        assert abs(in_flight - level.level) / level.level < 0.05, (level.level, in_flight)
        assert 0.85 * level.level / 0.025 < throughput <= level.level / 0.025, (level.level, throughput)
        assert len(level.shares()) == min(int(level.level), 2)  # one request in flight: one process loads


def test_several_models_over_two_processes_count_and_merge_per_model(server, protocol: str) -> None:
    """simple follows the sweep while fixed_delay (25 ms a request, 4 instances) is held at c=3 over both processes."""
    result = perfprobe.sweep(
        ["simple", "fixed_delay@c=3"],
        url=server.url(protocol),
        protocol=protocol,
        processes=2,
        concurrency="1:2",
        shape=["INPUT0:16"],
        measurement_interval=1000,
        stability_windows=2,
        max_trials=3,
    )
    assert result.document["settings"]["processes"] == 2
    for level in result.level_results:
        assert level.model_names() == ["simple", "fixed_delay"]
        for window in level.windows:
            assert window.drained
            assert sorted(share.index for share in window.shares) == [0, 1]  # fixed_delay's 3 load both
            for name, stats in window.parts.items():
                assert window.server[name].success_count == stats.completed > 0, name
            assert sum(stats.completed for stats in window.parts.values()) == window.stats.completed
            assert sum(share.completed for share in window.shares) == window.stats.completed
            union = LatencyHistogram()
            for share in window.shares:
                union.merge(LatencyHistogram.decode(share.latency))
            assert union.summary() == window.stats.latency.summary()
        held = level.for_model("fixed_delay", 3).merged()
        # Little's law: the split keeps all 3 (a wrong one, 2 or 4); the client's own time between a response
        # and the next send (longer on a busy machine) is outside the latency, so it reads a little under 3
        in_flight = held.throughput() * held.latency.mean_us / 1e6
        assert 2.5 < in_flight <= 3.1, in_flight
    rows = result.levels_by_model
    assert list(zip(rows["Model"], rows["Concurrency"], strict=True)) == [
        ("simple", 1),
        ("fixed_delay", 3),
        ("simple", 2),
        ("fixed_delay", 3),
    ]


def test_several_models_open_loop_over_two_processes_hold_each_rate(server) -> None:
    result = perfprobe.sweep(
        ["simple", "identity@rate=150"],
        url=server.grpc_url,
        protocol="grpc",
        processes=2,
        request_rate="300",
        shape=["INPUT0:16"],
        measurement_interval=2000,
        stability_windows=2,
        max_trials=2,
    )
    level = result.level_results[0]
    assert_model_rates(level, {"simple": 300.0, "identity": 150.0})
    assert [share.index for share in level.shares()] == [0, 1]
    assert all(share.completed > 0.3 * level.merged().completed for share in level.shares())


@pytest.mark.parametrize("models", [("simple",), ("simple", "identity@c=2")])
def test_a_killed_load_process_stops_the_run_keeping_levels_and_no_shared_memory(
    server, tmp_path: Path, models: tuple[str, ...]
) -> None:
    named = [flag for model in models for flag in ("-m", model)]
    process = subprocess.Popen(
        perfprobe_command(
            "sweep", "-u", server.http_url, *named, "--shape", "INPUT0:16", "--processes", "2",
            "--shared-memory", "system", "--output-shared-memory-size", "64", "--concurrency", "2:8:x2",
            "--measurement-interval", "500", "--stability-windows", "2", "--max-trials", "4", "--no-report",
            "--output-dir", str(tmp_path),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    results = tmp_path / "results.csv"
    _wait_for(lambda: results.exists() and len(results.read_text().splitlines()) >= 2 or process.poll() is not None)
    time.sleep(0.3)  # into the second level
    children = _load_processes(process.pid)
    assert len(children) == 2
    os.kill(children[1], signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == exitcodes.SERVER_ERROR, stderr
    assert len(stderr.strip().splitlines()) == 1 and "load process" in stderr and "killed by signal 9" in stderr
    assert results.read_text().splitlines()[1].startswith("2,")  # the finished level is kept
    assert own_segments(process.pid, "sweep") == []
    assert [name for name in _our_regions(server) if "_sweep_" in name] == []
    assert _load_processes(process.pid) == []


def test_ctrl_c_stops_every_load_process_and_cleans_up(server, tmp_path: Path) -> None:
    process = subprocess.Popen(
        perfprobe_command(
            "sweep", "-i", "grpc", "-u", server.grpc_url, "-m", "simple", "--processes", "2",
            "--shared-memory", "system", "--concurrency", "4", "--measurement-interval", "400",
            "--max-trials", "50", "--stability-percentage", "0.001", "--no-report", "--output-dir", str(tmp_path),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for(lambda: len(_load_processes(process.pid)) == 2 and len(_our_regions(server)) >= 4)
    time.sleep(1.0)
    children = _load_processes(process.pid)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == exitcodes.INTERRUPTED, stderr
    assert stderr.strip() == "interrupted: results measured so far are written", stderr
    assert own_segments(process.pid, "sweep") == []
    assert [name for name in _our_regions(server) if "_sweep_" in name] == []
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--processes", "0"), "--processes must be at least 1"),
        (("--processes", "many"), "--processes must be a number or auto"),
        (("--cluster", "auto", "--cluster-runtime-env", "[1]"), "--cluster-runtime-env must be a JSON object"),
    ],
)
def test_bad_process_options_are_one_line_and_exit_2(server, flags: tuple[str, ...], says: str) -> None:
    result = run_perfprobe("sweep", "-u", server.http_url, "-m", "simple", *flags, timeout=60)
    assert result.returncode == exitcodes.USAGE
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_load_that_cannot_start_in_the_load_processes_is_one_line(server, tmp_path: Path) -> None:
    """Each load process meets the problem and says it; the coordinator says it once, not once per process."""
    result = run_perfprobe(
        "sweep", "-u", server.http_url, "-m", "identity", "--shape", "INPUT0:16", "--processes", "2",
        "--shared-memory", "system", "--no-report", "--output-dir", str(tmp_path), timeout=120,
    )  # fmt: skip
    assert result.returncode == exitcodes.USAGE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "give --output-shared-memory-size" in lines[0], result.stderr
    assert own_segments(result.pid, "sweep") == []


def test_cluster_without_ray_says_how_to_install_and_exits_5(server, tmp_path: Path) -> None:
    hidden = tmp_path / "no_ray"  # a fake: Ray's import fails, as where the extra is not installed
    (hidden / "ray").mkdir(parents=True)
    (hidden / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    result = run_perfprobe(
        "sweep", "-u", server.http_url, "-m", "simple", "--cluster", "auto", "--no-report",
        "--output-dir", str(tmp_path / "out"), timeout=60, env={"PYTHONPATH": str(hidden)},
    )  # fmt: skip
    assert result.returncode == exitcodes.SERVER_UNAVAILABLE, result.stderr
    assert "pip install 'perfprobe[cluster]'" in result.stderr


@pytest.mark.parametrize("then", ["wait", "sigterm"])
def test_a_stopped_load_process_is_given_up_on_in_bounded_time(server, tmp_path: Path, then: str) -> None:
    """Faults round two, item 12: SIGSTOP on one load process; the run ends (exit 4, or 130 on SIGTERM), levels kept."""
    process = subprocess.Popen(
        perfprobe_command(
            "sweep", "-u", server.http_url, "-m", "simple", "--processes", "2", "--concurrency", "2:4:x2",
            "--measurement-interval", "500", "--request-timeout", "2", "--no-report", "--output-dir", str(tmp_path),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    results = tmp_path / "results.csv"
    _wait_for(lambda: results.exists() or process.poll() is not None)
    time.sleep(0.3)  # into the second level
    children = _load_processes(process.pid)
    assert len(children) == 2
    os.kill(children[1], signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        if then == "sigterm":
            time.sleep(1.0)
            process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(children[1], signal.SIGKILL)
    took = time.monotonic() - stopped
    if then == "wait":  # the request timeout, the group's margin (15 s), and room for a busy machine
        assert process.returncode == exitcodes.SERVER_ERROR, stderr
        assert "did not answer in" in stderr and "levels finished before it are kept" in stderr
        assert took < 2 + 15 + 15
    else:  # the interrupted level's drain (2 s) and the answer margin (5 s), and room for a busy machine
        assert process.returncode == exitcodes.INTERRUPTED, stderr
        assert took < 1 + 7 + 8
    assert results.read_text().splitlines()[1].startswith("2,")  # the finished level is kept
    assert _load_processes(process.pid) == []
