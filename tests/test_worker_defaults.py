"""The default worker kind follows the requests each load process keeps in flight (HTTP: threads for few)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import run_perfprobe

from perfprobe.cli import _wants_greenlets, build_parser
from perfprobe.load.runtime import usable_cores
from perfprobe.runs.options import SweepOptions, worker_kind
from perfprobe.transport.kserve_http import THREADS_UP_TO as HTTP_THREADS_UP_TO

FAST = ["--measurement-interval", "300", "--stability-windows", "2", "--max-trials", "3", "--no-report"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"concurrency": "1:4"}, "thread"),
        ({"concurrency": f"1:{HTTP_THREADS_UP_TO + 1}"}, "greenlet"),  # the top level decides for the run
        ({"concurrency": "8", "processes": 2}, "thread"),  # 4 in flight per load process
        ({"concurrency": "8", "processes": 4}, "thread"),
        ({"concurrency": "9", "processes": 2}, "greenlet"),  # shares 5 and 4: the larger counts
        ({"concurrency": "2", "processes": "auto"}, "thread"),  # one load process per usable core: ≤ 2 each
        (
            {"concurrency": "64", "processes": "auto"},
            "thread" if -(-64 // usable_cores()) <= HTTP_THREADS_UP_TO else "greenlet",
        ),
        ({"concurrency": "2", "cluster": "auto"}, "greenlet"),  # the cluster's CPUs are counted at start-up
        ({"concurrency": "2", "model": ["simple", "other@c=1"]}, "greenlet"),  # several models: shares add up
        ({"concurrency": "2", "mode": "async"}, "greenlet"),  # HTTP async requests are greenlets
        ({"request_rate": "100"}, "greenlet"),  # open loop: 64 workers by default
        ({"request_rate": "100", "max_inflight": 4}, "thread"),
        ({"concurrency": "2", "workers": "greenlet"}, "greenlet"),  # as given
        ({"concurrency": "64", "workers": "thread"}, "thread"),
        ({"concurrency": "2", "protocol": "grpc"}, "greenlet"),  # gRPC's own HTTP/2 connection
        ({"concurrency": "2", "protocol": "grpc", "grpc_transport": "grpcio"}, "thread"),
    ],
)
def test_the_default_worker_kind_follows_the_requests_in_flight_per_process(options: dict, expected: str) -> None:
    assert worker_kind(SweepOptions(**{"model": "simple", **options})) == expected


def test_the_command_line_patches_only_for_a_run_that_drives_greenlets() -> None:
    parser = build_parser()
    assert not _wants_greenlets(parser.parse_args(["sweep", "-m", "simple", "--concurrency", "1:4"]))
    assert _wants_greenlets(parser.parse_args(["sweep", "-m", "simple", "--concurrency", "1:8"]))
    assert not _wants_greenlets(
        parser.parse_args(["sweep", "-m", "simple", "--concurrency", "1:8", "--workers", "thread"])
    )
    assert not _wants_greenlets(
        parser.parse_args(["sweep", "-m", "simple", "--concurrency", "1:8", "--processes", "2"])
    )


@pytest.mark.parametrize(
    ("level", "processes", "expected"),
    [
        ("2", "1", "thread"),
        ("8", "1", "greenlet"),
        ("2", "auto", "thread"),  # one load process per usable core, at most 2 requests in flight each
    ],
)
def test_a_sweep_runs_and_records_the_kind_its_level_calls_for(
    server, tmp_path: Path, level: str, processes: str, expected: str
) -> None:
    done = run_perfprobe(
        "sweep", "-m", "simple", "-u", server.http_url, "--concurrency", level, "--processes", processes,
        "--output-dir", str(tmp_path), *FAST,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{expected} workers" in done.stdout
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["settings"]["worker_kind"] == expected
    (row,) = document["levels"]
    for window in row["windows"]:  # the server answered each request the workers counted, and nothing else
        assert window["completed"] == window["server"]["simple"]["counts"]["success"] > 0


def test_grpc_async_on_the_own_connection_says_it_is_sync_and_runs(server, tmp_path: Path) -> None:
    """Each worker waits on its own HTTP/2 socket: there is no async API to use, and the run says so."""
    done = run_perfprobe(
        "sweep", "-i", "grpc", "-m", "simple", "-u", server.grpc_url, "--mode", "async", "--concurrency", "2",
        "--output-dir", str(tmp_path), *FAST,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "sync and async are the same" in done.stdout + done.stderr
    (row,) = json.loads((tmp_path / "results.json").read_text())["levels"]
    for window in row["windows"]:
        assert window["completed"] == window["server"]["simple"]["counts"]["success"] > 0


def test_thread_workers_get_native_sockets_even_where_gevent_has_patched_socket() -> None:
    """Under the patch, a thread worker's socket would wait through a hub of its own (the cost threads avoid)."""
    script = textwrap.dedent(
        """
        import perfprobe
        perfprobe.patch_for_greenlets()
        import socket
        from perfprobe.client.http_wire import PlainSocketPool
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        pool = PlainSocketPool("127.0.0.1", listener.getsockname()[1], 5.0, 7.0)
        sock = pool.get_socket()
        accepted, _ = listener.accept()
        sock.sendall(b"ping")
        print(type(socket.socket()).__module__, type(sock).__module__, sock.gettimeout(), accepted.recv(4).decode())
        pool.release_socket(sock)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    patched_module, pool_module, timeout, received = done.stdout.split()
    assert patched_module.startswith("gevent")  # the patch took
    assert pool_module == "socket" and float(timeout) == 7.0 and received == "ping"
