"""Faults against the real server: timeouts, a server that dies, hangs or is not Triton, refusals.

Stand-ins (named so) are used only for what a real Triton cannot do: a socket that accepts and
never answers, and an HTTP server that is not Triton at all.
"""

from __future__ import annotations

import csv
import http.server
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TEST_MODELS, perfprobe_command, run_perfprobe
from test_sweep import COMBINATIONS, run_sweep, worker_options

from perfprobe import exitcodes
from perfprobe.server import EmbeddedServer

BASE_MS = 4  # slow_stall's every execution takes at least this long
STALL_EVERY = 25
TIMEOUT_S = "0.2"  # past slow_stall's 300 ms stall; the request queued behind a stall still makes it


@pytest.mark.parametrize(("protocol", "mode", "workers"), COMBINATIONS)
def test_timeouts_are_counted_once_and_never_complete_another_request(
    server, tmp_path: Path, protocol: str, mode: str, workers: str
) -> None:
    result, rows, document = run_sweep(
        server, protocol, tmp_path, "-m", "slow_stall", "--shape", "INPUT0:16", "--concurrency", "1",
        "--mode", mode, *worker_options(workers), "--request-timeout", TIMEOUT_S,
        "--measurement-interval", "700", "--stability-windows", "2", "--max-trials", "3", "--no-report",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    row = rows[0]
    level = document["levels"][0]
    reported = [w for w in level["windows"] if w["index"] in level["reported_windows"]]
    timeouts = sum(w["errors"].get("TIMEOUT", 0) for w in reported)
    completed = sum(w["completed"] for w in reported)
    server_success = sum(w["server"]["slow_stall"]["counts"]["success"] for w in reported)
    # no completion came early: every latency is at least the model's own time
    assert int(row["Min latency"]) >= BASE_MS * 1000, row
    # the only errors are timeouts, and there is one per stall (a stall lands in a window or the next)
    assert all(set(w["errors"]) <= {"TIMEOUT"} for w in reported), [w["errors"] for w in reported]
    assert timeouts >= 1
    assert abs(timeouts - server_success / STALL_EVERY) <= len(reported) + 1, (timeouts, server_success)
    # the server finished every request we completed or gave up on; one in flight may cross a boundary
    assert abs(server_success - (completed + timeouts)) <= len(reported), (server_success, completed, timeouts)
    assert "workers did not stop" not in row["Warnings"]


@pytest.fixture
def doomed_server() -> Iterator[EmbeddedServer]:
    """A server of this test's own, to be killed while a sweep runs against it."""
    with EmbeddedServer(builtin_models=["simple"], model_repositories=[TEST_MODELS], pick_free_ports=True) as own:
        yield own


def _kill_after_first_level(server: EmbeddedServer, out: Path, args: list[str]) -> tuple[int, str, float]:
    process = subprocess.Popen(perfprobe_command(*args), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    csv_path = out / "results.csv"
    while time.monotonic() < deadline:
        if csv_path.exists() and len(csv_path.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    killed_at = time.monotonic()
    server.kill()
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr, time.monotonic() - killed_at


@pytest.mark.parametrize(
    ("protocol", "mode", "workers", "processes"),
    [
        ("http", "sync", "greenlet", "1"),
        ("http", "sync", "thread", "1"),  # HTTP's default at up to 4 in flight per process
        ("grpc", "stream", "thread", "1"),
        ("grpc", "stream", "asyncio", "1"),
        ("http", "sync", "greenlet", "2"),
        ("grpc", "sync", "thread", "2"),
        ("grpc", "sync", "greenlet", "1"),  # perfprobe's own HTTP/2 connections
        ("grpc", "stream", "greenlet", "1"),
    ],
)
def test_server_killed_mid_sweep_stops_with_exit_3_and_keeps_finished_levels(
    doomed_server: EmbeddedServer, tmp_path: Path, protocol: str, mode: str, workers: str, processes: str
) -> None:
    args = [
        "sweep", "-i", protocol, "-u", doomed_server.url(protocol), "-m", "simple", "--mode", mode,
        "--workers", workers, "--concurrency", "1:4", "--measurement-interval", "500", "--stability-windows", "2",
        "--max-trials", "4", "--request-timeout", "60", "--no-report", "--output-dir", str(tmp_path),
        "--processes", processes,
    ]  # fmt: skip
    code, stderr, after_kill_s = _kill_after_first_level(doomed_server, tmp_path, args)
    assert code == exitcodes.SERVER_UNREACHABLE, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("perfprobe: error: the server stopped answering"), stderr
    # a wait on any request's timeout would take 60 s or more
    assert after_kill_s < 20, f"a dead server must stop the sweep at once, not after {after_kill_s:.0f} s"
    with (tmp_path / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and rows[0]["Concurrency"] == "1"  # the level finished before the kill is kept
    assert float(rows[0]["Inferences/Second"]) > 0


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Stand-in for a hung server: accepts TCP connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.mark.parametrize(("command", "protocol"), [("sweep", "http"), ("sweep", "grpc"), ("compare", "http")])
def test_a_port_that_never_answers_fails_within_the_request_timeout(
    silent_port: int, command: str, protocol: str
) -> None:
    started = time.monotonic()
    result = run_perfprobe(
        command, "-i", protocol, "-u", f"127.0.0.1:{silent_port}", "-m", "simple", "--request-timeout", "2",
        timeout=60,
    )  # fmt: skip
    assert result.returncode == exitcodes.SERVER_UNREACHABLE, result.stderr
    assert time.monotonic() - started < 15
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


class _NotTriton(http.server.BaseHTTPRequestHandler):
    """Stand-in for some other web server: an HTML error page for every path."""

    def do_GET(self) -> None:  # noqa: N802 — the stdlib's name
        page = b"<html><head><title>404 Not Found</title></head>\n<body><h1>Not Found</h1>\n<p>nope</p></body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_that_is_not_triton_gets_one_line() -> None:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotTriton)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        result = run_perfprobe("sweep", "-u", f"127.0.0.1:{httpd.server_address[1]}", "-m", "simple", timeout=60)
    finally:
        httpd.shutdown()
    assert result.returncode == exitcodes.SERVER_ERROR
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "<" not in lines[0] and "404 Not Found" in lines[0], result.stderr


def test_the_servers_reasons_are_kept_and_the_most_frequent_printed(server, tmp_path: Path) -> None:
    result, rows, document = run_sweep(
        server, "http", tmp_path, "-m", "refuse_all", "--shape", "INPUT0:4", "--concurrency", "1",
        "--measurement-interval", "300", "--max-trials", "2", "--no-report",
    )  # fmt: skip
    assert result.returncode == exitcodes.SERVER_ERROR  # every request failed
    reasons = document["levels"][0]["error_reasons"]
    code = reasons[0]["code"]
    assert code.startswith("HTTP ") and "planned refusal: input rejected" in reasons[0]["reason"]
    assert reasons[0]["count"] == int(rows[0]["Errors"]) > 0
    assert f"most frequent reason: {code}: planned refusal: input rejected" in rows[0]["Warnings"]
    assert "planned refusal" in result.stderr
    # Triton counts the python backend's error responses as successes: said so, not blamed on another client
    assert "another client" not in rows[0]["Warnings"] and "answered with an error" in rows[0]["Warnings"]


def test_two_clients_at_once_are_noticed(server, tmp_path: Path) -> None:
    """The server counted more than we sent: the other run's requests are named in a warning."""
    other = subprocess.Popen(
        perfprobe_command(
            "sweep", "-u", server.http_url, "-m", "simple", "--concurrency", "2", "--measurement-interval", "4000",
            "--max-trials", "1", "--no-report", "--output-dir", str(tmp_path / "other"),
        ),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(1.5)
        result, rows, _ = run_sweep(
            server, "http", tmp_path / "ours", "-m", "simple", "--concurrency", "1", "--measurement-interval", "400",
            "--stability-windows", "2", "--max-trials", "2", "--no-report",
        )  # fmt: skip
    finally:
        other.wait(timeout=60)
    assert result.returncode == 0, result.stderr
    assert "another client is loading this model" in rows[0]["Warnings"]


@pytest.fixture
def one_answer_per_connection() -> Iterator[tuple[int, list[int]]]:
    """Stand-in for a server that closes idle kept-alive sockets: one answer per connection, then close."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    requests_seen: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                if conn.recv(65536):
                    requests_seen.append(1)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], requests_seen
    stop.set()
    thread.join()
    listener.close()


def test_a_request_resent_on_a_stale_socket_is_reported(one_answer_per_connection) -> None:
    from perfprobe.client.http_wire import PlainSocketPool, WireConnection

    port, seen = one_answer_per_connection
    connection = WireConnection(PlainSocketPool("127.0.0.1", port, 2.0, 2.0))
    request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    assert connection.exchange(request)[2] == b"ok" and not connection.last_resent
    time.sleep(0.1)  # the stand-in has closed the kept-alive socket by now
    assert connection.exchange(request)[2] == b"ok"
    assert connection.last_resent  # it went out twice, and says so
    assert len(seen) == 2  # the first attempt never reached the application; the resend did
    connection.close()


def test_an_output_shorter_than_its_shape_is_a_server_error_not_a_crash() -> None:
    """Seen on a GPU machine (numpy 2 in the server's backend): outputs of the right shape, 0 bytes."""
    from perfprobe.client import InferenceServerError
    from perfprobe.client.tensors import InferResult, OutputTensor

    result = InferResult("identity", "1", "", [OutputTensor("OUTPUT0", "FP32", [1024], {})], {"OUTPUT0": b""}, {}, None)
    with pytest.raises(InferenceServerError) as raised:
        result.as_numpy("OUTPUT0")
    assert raised.value.status == "BAD_RESPONSE" and not raised.value.no_answer
    assert "OUTPUT0 does not hold a FP32 tensor of shape [1024]" in raised.value.message
