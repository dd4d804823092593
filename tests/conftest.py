"""One real embedded Triton for the whole test session, with the built-in and test models."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from perfprobe.client import InferenceClient, make_client
from perfprobe.server import EmbeddedServer

TEST_MODELS = Path(__file__).parent / "models"

# Tests Ctrl-C (SIGINT) the commands they start. A shell starts a background job with SIGINT ignored
# and its children inherit that, so a suite started with `&` would see every Ctrl-C ignored (rightly:
# perfprobe keeps a disposition it was given). Give the suite, and so every command it starts, the
# default back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
PROTOCOLS = ("http", "grpc")


@dataclass
class ExternalServer:
    """A server someone else started (``PERFPROBE_TEST_SERVER=HTTP_ADDR,GRPC_ADDR``).

    Used to run the client tests from an environment without the server wheel, e.g. one with
    numpy 2 (nvidia-pytriton pins numpy<2), against a real server started from another venv.
    """

    http_url: str
    grpc_url: str
    version: str = ""

    def url(self, protocol: str) -> str:
        return self.http_url if protocol == "http" else self.grpc_url


@pytest.fixture(scope="session")
def server() -> Iterator[EmbeddedServer | ExternalServer]:
    """The real tritonserver from nvidia-pytriton on free loopback ports."""
    external = os.environ.get("PERFPROBE_TEST_SERVER")
    if external:
        http, grpc_ = external.split(",")
        with make_client("http", http) as probe:
            yield ExternalServer(http, grpc_, probe.server_metadata()["version"])
        return
    log = Path(os.environ.get("PERFPROBE_TEST_LOG", "/tmp/perfprobe-test-tritonserver.log"))
    with EmbeddedServer(model_repositories=[TEST_MODELS], pick_free_ports=True, log_path=log) as running:
        yield running


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def client(server: EmbeddedServer, protocol: str) -> Iterator[InferenceClient]:
    """A client of each protocol (the test runs once per protocol)."""
    with make_client(protocol, server.url(protocol)) as made:
        yield made


def perfprobe_command(*args: str) -> list[str]:
    """The perfprobe command line, run with this interpreter (for Popen when a test signals it)."""
    return [sys.executable, "-m", "perfprobe", *args]


def run_perfprobe(
    *args: str, timeout: float = 240, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """The perfprobe command as a user runs it, in a subprocess; ``.pid`` is its process id.

    A run's shared-memory segments are named after that id (``perfprobe_<pid>_…``), so a test can
    look for its own leftovers only, whatever else runs on the machine (``own_segments``).
    """
    merged = {**os.environ, **(env or {})}
    command = perfprobe_command(*args)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=merged, cwd=cwd
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    done.pid = process.pid  # type: ignore[attr-defined]
    return done


def own_segments(pid: int, kind: str = "") -> list[str]:
    """The shared-memory segments still in /dev/shm of the perfprobe run with this process id (of one kind)."""
    from perfprobe.shm.system import leftover_segments

    return [name for name in leftover_segments(str(pid)) if f"_{kind}_" in name]


def assert_model_rates(level, rates: dict[str, float], tolerance: float = 0.05) -> None:
    """Each model of a several-models level sent at its rate (requests finished over the reported windows)."""
    for name, rate in rates.items():
        merged = level.for_model(name, rate).merged()
        achieved = (merged.completed + merged.error_count) / (merged.duration_ns / 1e9)
        assert abs(achieved - rate) / rate < tolerance, (name, achieved)


@contextmanager
def slowed_simple(server, delay_ms: float) -> Iterator[EmbeddedServer | ExternalServer]:
    """A server whose built-in ``simple`` sleeps ``delay_ms`` per execution: a genuinely slower build.

    A server of its own, with the delay in the model's configuration from the start: reloading
    ``simple`` on the shared server under load has crashed Triton 2.51 (SIGSEGV after the old
    version's unload), taking every later test with it. With an external server (numpy 2 suite),
    the model is reloaded there, as nothing else can be done.
    """
    if isinstance(server, ExternalServer):
        with make_client("http", server.http_url) as control:
            config = control.model_config("simple")
            slow = {**config, "name": "simple", "parameters": {"delay_ms": {"string_value": f"{delay_ms:g}"}}}
            control.load_model("simple", json.dumps(slow))
            try:
                yield server
            finally:
                control.load_model("simple", json.dumps(config))
        return
    import shutil
    import tempfile

    from perfprobe.server.repository import builtin_source

    with tempfile.TemporaryDirectory() as repository:
        model = Path(repository) / "simple"
        shutil.copytree(builtin_source("simple"), model)
        config = (model / "config.pbtxt").read_text()
        slow_config = config.replace('string_value: "0"', f'string_value: "{delay_ms:g}"')
        assert slow_config != config, "the built-in simple no longer has its delay_ms parameter"
        (model / "config.pbtxt").write_text(slow_config)
        with EmbeddedServer(builtin_models=[], model_repositories=[repository], pick_free_ports=True) as slow:
            yield slow


RUN_SETTINGS = (
    "--concurrency",
    "1:2",
    "--measurement-interval",
    "400",
    "--stability-windows",
    "3",
    "--max-trials",
    "5",
)


def _sweep_simple(target, out: Path) -> subprocess.CompletedProcess:
    args = ("sweep", "-u", target.http_url, "-m", "simple", "--output-dir", str(out), *RUN_SETTINGS)
    if getattr(target, "metrics_url", None):
        args += ("--metrics-url", target.metrics_url)
    return run_perfprobe(*args)


@pytest.fixture(scope="session")
def simple_runs(server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three sweeps of ``simple`` over HTTP: a baseline, a repeat of it, and one with a 3 ms delay."""
    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for name in ("baseline", "repeat", "slow"):
        out = root / name
        if name == "slow":
            with slowed_simple(server, 3) as slow:
                result = _sweep_simple(slow, out)
        else:
            result = _sweep_simple(server, out)
        assert result.returncode == 0, result.stderr
        runs[name] = out
    return runs
