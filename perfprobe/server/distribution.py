"""Find the ``tritonserver`` that the nvidia-pytriton wheel ships, and what it needs to run.

The wheel holds the server binary, the python backend, one backend stub per Python
version and its bundled shared libraries; Triton wants them as one backend folder, so we
assemble that folder (once, in a cache) instead of touching the installed wheel.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

INSTALL_HINT = "pip install 'perfprobe[server]'"


class ServerNotInstalled(RuntimeError):
    """The embedded server's wheel (nvidia-pytriton) is not installed."""


@dataclass(frozen=True)
class TritonDistribution:
    """Paths inside an installed nvidia-pytriton wheel."""

    root: Path  # .../site-packages/pytriton/tritonserver
    libs: Path  # .../site-packages/nvidia_pytriton.libs

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "tritonserver"

    def stub_for(self, version: tuple[int, int]) -> Path:
        return self.root / "python_backend_stubs" / f"{version[0]}.{version[1]}" / "triton_python_backend_stub"

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for the server: its libraries, our libpython, our interpreter first on PATH.

        The python backend stub embeds libpython and finds site-packages through the
        ``python3`` on PATH, so models import numpy and onnxruntime from this interpreter.
        """
        env = dict(os.environ if base is None else base)
        lib_dirs = [str(self.libs)]
        libpython_dir = sysconfig.get_config_var("LIBDIR")
        if libpython_dir:
            lib_dirs.append(libpython_dir)
        if env.get("LD_LIBRARY_PATH"):
            lib_dirs.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(lib_dirs)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return env


def locate() -> TritonDistribution:
    """The installed wheel's paths, or ``ServerNotInstalled`` saying how to install it."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServerNotInstalled(f"the embedded Triton server is not installed: {INSTALL_HINT}")
    package = Path(next(iter(spec.submodule_search_locations)))
    dist = TritonDistribution(root=package / "tritonserver", libs=package.parent / "nvidia_pytriton.libs")
    if not dist.binary.exists():
        raise ServerNotInstalled(f"nvidia-pytriton has no tritonserver binary at {dist.binary}: {INSTALL_HINT}")
    return dist


def cache_dir() -> Path:
    """perfprobe's cache folder (``$PERFPROBE_CACHE`` or ``~/.cache/perfprobe``)."""
    base = os.environ.get("PERFPROBE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "perfprobe"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def backend_directory(dist: TritonDistribution, python_version: tuple[int, int] | None = None) -> Path:
    """A backend folder holding the python backend and the stub for our Python version."""
    version = python_version or sys.version_info[:2]
    stub = dist.stub_for(version)
    if not stub.exists():
        raise ServerNotInstalled(f"nvidia-pytriton ships no python backend stub for Python {version[0]}.{version[1]}")
    source = dist.root / "backends" / "python"
    target = cache_dir() / "backends" / f"py{version[0]}{version[1]}-{_fingerprint(dist)}"
    python_dir = target / "python"
    if not (python_dir / "triton_python_backend_stub").exists():
        staging = target.with_name(target.name + f".tmp{os.getpid()}")
        (staging / "python").mkdir(parents=True, exist_ok=True)
        for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
            shutil.copy2(source / name, staging / "python" / name)
        shutil.copy2(stub, staging / "python" / "triton_python_backend_stub")
        try:
            staging.rename(target)
        except OSError:  # another process finished first; theirs is identical
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _fingerprint(dist: TritonDistribution) -> str:
    stat = dist.binary.stat()
    return f"{stat.st_size:x}{int(stat.st_mtime):x}"


@lru_cache(maxsize=4)
def server_options(binary: str, env_items: tuple[tuple[str, str], ...]) -> frozenset[str]:
    """The long options this tritonserver accepts, read from its ``--help``."""
    try:
        completed = subprocess.run(
            [binary, "--help"], env=dict(env_items), capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    text = completed.stdout + completed.stderr
    return frozenset(word.split("=")[0].rstrip(",") for word in text.split() if word.startswith("--"))
