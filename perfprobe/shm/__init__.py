"""Shared-memory regions for tensors: system (POSIX, ``system``) and CUDA (``cuda``)."""

from __future__ import annotations

from typing import Any


def region_set(kind: str, purpose: str, device_id: int = 0) -> Any:
    """The regions of one run: a ``RegionSet`` for ``system``, a ``CudaRegionSet`` for ``cuda``.

    Both create, register and on ``close`` clean up only their own regions; callers use them alike.
    """
    if kind == "cuda":
        from perfprobe.shm.cuda import CudaRegionSet

        return CudaRegionSet(purpose, device_id)
    from perfprobe.shm.system import RegionSet

    return RegionSet(purpose)
