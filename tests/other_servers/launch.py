"""Start KServe's ModelServer or Seldon MLServer serving `simple` on free loopback ports, for the tests.

Each runs from its own virtual environment (``make test`` makes ``.venv-kserve`` and
``.venv-mlserver``; their pins clash with the embedded Triton's). The model writes how many
requests it served to a file (``counting.py``), which ``OtherServer.served()`` reads.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from perfprobe.server.launcher import free_ports

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENVS = {"kserve": ROOT / ".venv-kserve", "mlserver": ROOT / ".venv-mlserver"}
STARTUP_S = 120.0


@dataclass
class OtherServer:
    """A running server: its addresses, its process, and the file its model counts into."""

    kind: str
    http_port: int
    grpc_port: int
    process: subprocess.Popen
    count_file: Path
    log_file: Path

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def url(self, protocol: str) -> str:
        return self.http_url if protocol == "http" else self.grpc_url

    def served(self) -> int:
        """Requests the model has answered so far (it rewrites the file after each)."""
        try:
            return int(self.count_file.read_text() or 0)
        except FileNotFoundError:
            return 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def missing_venv(kind: str) -> str:
    """Why the server cannot be started here ("" when its environment is there)."""
    venv = VENVS[kind]
    return "" if (venv / "bin" / "python").exists() else f"{venv.name} is missing: make test installs it"


def start(kind: str, workdir: Path, cpus: set[int] | None = None) -> OtherServer:
    """Start ``kind`` and wait until it serves `simple`; the server is stopped and its log shown if it cannot.

    ``cpus``: the cores the server may run on (a benchmark keeps it off the load's core).
    """
    http_port, grpc_port, metrics_port = free_ports(3)
    count_file = workdir / f"{kind}-served.txt"
    log_file = workdir / f"{kind}.log"
    env = {**os.environ, "PYTHONPATH": str(HERE), "PERFPROBE_TEST_COUNT_FILE": str(count_file)}
    bin_dir = VENVS[kind] / "bin"
    if kind == "kserve":
        command = [str(bin_dir / "python"), str(HERE / "kserve_simple.py"), str(http_port), str(grpc_port)]
        cwd = HERE
    else:
        command = [str(bin_dir / "mlserver"), "start", "."]
        cwd = HERE / "mlserver_repo"
        env.update(
            MLSERVER_HOST="127.0.0.1",
            MLSERVER_HTTP_PORT=str(http_port),
            MLSERVER_GRPC_PORT=str(grpc_port),
            MLSERVER_METRICS_PORT=str(metrics_port),
            MLSERVER_PARALLEL_WORKERS="0",
            MLSERVER_DEBUG="false",
        )
    with log_file.open("wb") as log:
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin)
    server = OtherServer(kind, http_port, grpc_port, process, count_file, log_file)
    try:
        _wait_ready(server)
    except Exception:
        server.stop()
        sys.stderr.write(log_file.read_text(errors="replace")[-4000:])
        raise
    return server


def _wait_ready(server: OtherServer) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.kind} exited with {server.process.returncode} while starting")
        if _model_ready(server.http_url) and _accepts(server.grpc_port):
            return
        time.sleep(0.3)
    raise TimeoutError(f"{server.kind} did not serve `simple` within {STARTUP_S:.0f} s")


def _model_ready(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/models/simple/ready", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
