"""Shared-memory regions for tensors: system (POSIX, ``system``) and CUDA (``cuda``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from perfprobe.client import InferenceClient


class Region(Protocol):
    """One shared-memory region: system or CUDA, written the same way."""

    name: str
    byte_size: int

    def write(self, data: bytes, offset: int = 0) -> None: ...


class Regions(Protocol):
    """A run's regions: created, registered with the server, and released together."""

    def create(self, byte_size: int, label: str = "r") -> Region: ...

    def register(self, client: InferenceClient, region: Region) -> None: ...

    def close(self) -> list[str]: ...


def region_set(kind: str, purpose: str, device_id: int = 0, token: str | None = None) -> Regions:
    """The regions of one run: a ``RegionSet`` for ``system``, a ``CudaRegionSet`` for ``cuda``.

    Both create, register and on ``close`` clean up only their own regions; callers use them alike.
    Every name holds ``token`` (unique to the run by default), so regions can be found by it.
    """
    if kind == "cuda":
        from perfprobe.shm.cuda import CudaRegionSet

        return CudaRegionSet(purpose, device_id, token)
    from perfprobe.shm.system import RegionSet

    return RegionSet(purpose, token)
