"""Run the real ``tritonserver`` on loopback for the length of a ``with`` block.

Used by ``perfprobe serve``, by later commands' ``--serve`` flag and by the tests. The
server runs in its own process group so that the python backend's stub processes go
down with it on every exit path.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from perfprobe.server import distribution
from perfprobe.server.backend_regions import await_group_end, backend_regions, release_leftovers
from perfprobe.server.repository import BUILTIN_MODELS, materialize_builtin

LOOPBACK = "127.0.0.1"


class ServerStartError(RuntimeError):
    """The server could not be started or did not become ready."""


class PortInUse(ServerStartError):
    """A requested port is already taken on loopback."""


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct ports the kernel says are free right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def consecutive_free_ports(count: int, host: str = LOOPBACK, tries: int = 64) -> list[int]:
    """``count`` free ports in a row, as Triton's defaults are (HTTP, gRPC, metrics): a client given
    only the HTTP or gRPC port can then find the metrics by Triton's offset. Any free ones after
    ``tries`` failed attempts."""
    for _ in range(tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind((host, 0))
            base = first.getsockname()[1]
            if base + count - 1 > 65535:
                continue
            held = [first]
            try:
                for port in range(base + 1, base + count):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    held.append(sock)
                    sock.bind((host, port))
            except OSError:
                continue
            finally:
                for sock in held[1:]:
                    sock.close()
            return list(range(base, base + count))
    return free_ports(count, host)


class EmbeddedServer:
    """A real Triton server with perfprobe's built-in models (and any extra repositories)."""

    def __init__(
        self,
        *,
        builtin_models: Sequence[str] | None = None,
        model_repositories: Sequence[str | os.PathLike[str]] = (),
        http_port: int = 8000,
        grpc_port: int = 8001,
        metrics_port: int = 8002,
        pick_free_ports: bool = False,
        startup_timeout_s: float = 180.0,
        exit_timeout_s: int = 5,
        group_end_timeout_s: float = 5.0,
        log_verbose: int = 0,
        log_path: str | os.PathLike[str] | None = None,
        explicit_model_control: bool = True,
        extra_args: Sequence[str] = (),
    ) -> None:
        unknown = set(builtin_models or ()) - set(BUILTIN_MODELS)
        if unknown:
            raise ValueError(f"unknown built-in models {sorted(unknown)}; known: {', '.join(BUILTIN_MODELS)}")
        self.builtin_models = list(BUILTIN_MODELS if builtin_models is None else builtin_models)
        self.model_repositories = [Path(p) for p in model_repositories]
        self.http_port, self.grpc_port, self.metrics_port = http_port, grpc_port, metrics_port
        self.pick_free_ports = pick_free_ports
        self.startup_timeout_s = startup_timeout_s
        self.exit_timeout_s = exit_timeout_s
        self.group_end_timeout_s = group_end_timeout_s  # for killed backend stubs to let go of their regions
        self.log_verbose = log_verbose
        self.explicit_model_control = explicit_model_control
        self.extra_args = list(extra_args)
        self._log_path = Path(log_path) if log_path else None
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._regions_before: set[str] = set()  # the python backend's regions already there at start
        self.released_regions: list[str] = []  # a killed server's leftover regions, unlinked at stop
        self.version = ""

    # ---- addresses ---------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"{LOOPBACK}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}/metrics"

    def url(self, protocol: str) -> str:
        return self.http_url if protocol == "http" else self.grpc_url

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    # ---- lifecycle ------------------------------------------------------------------

    def _choose_ports(self) -> None:
        if self.pick_free_ports:
            self.http_port, self.grpc_port, self.metrics_port = consecutive_free_ports(3)
            return
        for label, port in (("HTTP", self.http_port), ("gRPC", self.grpc_port), ("metrics", self.metrics_port)):
            if not port_is_free(port):
                raise PortInUse(f"{label} port {port} is already in use on {LOOPBACK}; pick another or use free ports")

    def command(self, dist: distribution.TritonDistribution, repositories: list[Path]) -> list[str]:
        """The tritonserver command line for this configuration."""
        backend_dir = distribution.backend_directory(dist)
        args = [str(dist.binary)]
        for repo in repositories:
            args.append(f"--model-repository={repo}")
        args += [
            f"--backend-directory={backend_dir}",
            f"--http-address={LOOPBACK}",
            f"--grpc-address={LOOPBACK}",
            f"--metrics-address={LOOPBACK}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--log-verbose={self.log_verbose}",
        ]
        if self.explicit_model_control:
            # every model loads at start, and clients may still load / unload / reload them
            args += ["--model-control-mode=explicit", "--load-model=*"]
        env_items = tuple(sorted(dist.environment().items()))
        if "--allow-client-shm" in distribution.server_options(str(dist.binary), env_items):
            args.append("--allow-client-shm=true")
        return args + self.extra_args

    def start(self) -> EmbeddedServer:
        """Start the server and wait until it and every model are ready."""
        dist = distribution.locate()
        _refuse_numpy_2()
        self._choose_ports()
        self._workdir = Path(tempfile.mkdtemp(prefix="perfprobe-server-"))
        repositories = list(self.model_repositories)
        if self.builtin_models:
            repositories.insert(0, materialize_builtin(self._workdir / "models", self.builtin_models))
        if not repositories:
            raise ServerStartError("no model repository: name built-in models or a repository folder")
        if self._log_path is None:
            self._log_path = self._workdir / "tritonserver.log"
        log = open(self._log_path, "wb")  # noqa: SIM115 - handed to the child, closed in stop()
        self._log_handle = log
        self._regions_before = backend_regions()
        self._process = subprocess.Popen(
            self.command(dist, repositories),
            env=dist.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        ready_url = f"http://{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                code = self._process.returncode if self._process else None
                raise ServerStartError(f"tritonserver exited with code {code} while starting:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(ready_url, timeout=1) as response:
                    if response.status == 200:
                        with urllib.request.urlopen(f"http://{self.http_url}/v2", timeout=2) as meta:
                            self.version = json.loads(meta.read()).get("version", "")
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise ServerStartError(f"tritonserver not ready after {self.startup_timeout_s:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL to its process group), as a crash would."""
        if self._process is not None and self._process.poll() is None:
            _signal_group(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def stop(self, grace_s: float | None = None) -> None:
        """Stop the server (SIGTERM, then SIGKILL after the grace period) and remove its files."""
        grace = grace_s if grace_s is not None else self.exit_timeout_s + 10
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    _signal_group(process.pid, signal.SIGKILL)
                    process.wait()
            _signal_group(process.pid, signal.SIGKILL)  # stragglers (backend stubs), if any
            await_group_end(process.pid, self.group_end_timeout_s)
            # a server that was killed (or crashed) left its python backend's regions behind
            self.released_regions = release_leftovers(backend_regions() - self._regions_before)
        handle = getattr(self, "_log_handle", None)
        if handle is not None:
            handle.close()
            self._log_handle = None
        if self._workdir is not None:
            keep_log = self._log_path is not None and self._workdir in self._log_path.parents
            if keep_log and self._log_path.exists():
                final = Path(tempfile.gettempdir()) / f"perfprobe-tritonserver-{os.getpid()}.log"
                shutil.copy2(self._log_path, final)
                self._log_path = final
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _refuse_numpy_2() -> None:
    """Triton 2.51's python backend answers with empty outputs when its stub loads numpy 2.

    The stub imports this interpreter's numpy; seen on a GPU machine whose image had numpy 2.5
    (nvidia-pytriton pins numpy<2 for this). Better no server than one that measures nothing.
    """
    import numpy

    if int(numpy.__version__.split(".")[0]) >= 2:
        raise ServerStartError(
            f"the embedded Triton's python backend returns empty outputs under numpy {numpy.__version__}: "
            "run the server from an environment with numpy<2 (nvidia-pytriton pins it)"
        )


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
