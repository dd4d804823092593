"""perfprobe: a load generator and performance analyzer for KServe v2 / Triton servers.

From Python::

    import perfprobe

    result = perfprobe.sweep("simple", url="localhost:8000", concurrency="1:4", measurement_interval=1000)
    print(result.levels)  # the CSV's columns, one row per load level

Names are imported when first used, so ``import perfprobe`` stays light and never patches
anything (greenlet workers: call ``perfprobe.patch_for_greenlets()`` first).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "sweep": "perfprobe.runs.sweep",
    "compare": "perfprobe.runs.compare",
    "SweepResult": "perfprobe.runs.result",
    "CompareResult": "perfprobe.runs.compare",
    "RunObserver": "perfprobe.runs.observer",
    "SweepOptions": "perfprobe.runs.options",
    "RemoteModel": "perfprobe.client.remote",
    "make_client": "perfprobe.client.factory",
    "patch_for_greenlets": "perfprobe.greenlets",
    "PerfprobeError": "perfprobe.errors",
    "UsageError": "perfprobe.errors",
    "ServerUnreachable": "perfprobe.errors",
    "AllRequestsFailed": "perfprobe.errors",
    "LoadFailed": "perfprobe.errors",
    "LoadProcessLost": "perfprobe.errors",
    "ClusterUnavailable": "perfprobe.errors",
    "RunInterrupted": "perfprobe.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'perfprobe' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
