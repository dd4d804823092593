"""The embedded real Triton server (from the nvidia-pytriton wheel) and its built-in models.

Names load on first use: the command line reads ``BUILTIN_MODELS`` while building its parser,
before gevent patching, and must not pull in the launcher's networking modules then.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "BUILTIN_MODELS": "perfprobe.server.repository",
    "INSTALL_HINT": "perfprobe.server.distribution",
    "ServerNotInstalled": "perfprobe.server.distribution",
    "EmbeddedServer": "perfprobe.server.launcher",
    "PortInUse": "perfprobe.server.launcher",
    "ServerStartError": "perfprobe.server.launcher",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'perfprobe.server' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
