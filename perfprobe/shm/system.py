"""POSIX shared-memory regions that perfprobe creates, registers, and always cleans up.

Python's ``multiprocessing.shared_memory`` hands segments to the resource tracker, which
may unlink them early or warn at exit; here we own the lifecycle: ``/dev/shm/<key>`` is
opened and mapped directly, names are unique per run (so concurrent runs and other
clients never collide), and a ``RegionSet`` unregisters only the regions it registered
and unlinks only the segments it created — on normal exit, on exceptions, and on SIGINT /
SIGTERM (``perfprobe.interrupts.signals_as_interrupt`` turns SIGTERM into KeyboardInterrupt).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perfprobe.client import InferenceClient

import contextlib
import mmap
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

from perfprobe.errors import PerfprobeError
from perfprobe.exitcodes import SERVER_ERROR

SHM_DIR = "/dev/shm"
NAME_PREFIX = "perfprobe"


def run_token() -> str:
    """A short token unique to this run: process id plus randomness."""
    return f"{os.getpid()}_{secrets.token_hex(4)}"


class ClientShmRefused(PerfprobeError):
    """Triton 2.69 and later refuse client shared memory unless started with --allow-client-shm=true."""

    exit_code = SERVER_ERROR


@dataclass
class SystemRegion:
    """One mapped segment; ``name`` is the server-side region name, ``key`` the shm object name."""

    name: str
    key: str
    byte_size: int
    _fd: int = -1
    _map: mmap.mmap | None = None
    registered_with: list[Any] = field(default_factory=list)

    @property
    def path(self) -> str:
        return os.path.join(SHM_DIR, self.key.lstrip("/"))

    def create(self) -> SystemRegion:
        """Create the segment exclusively (never reuse someone else's) and map it."""
        self._fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(self._fd, self.byte_size)
            self._map = mmap.mmap(self._fd, self.byte_size)
        except BaseException:
            self.unlink()
            raise
        return self

    def write(self, data: bytes | memoryview, offset: int = 0) -> None:
        assert self._map is not None, "region is not mapped"
        end = offset + len(data)
        if end > self.byte_size:
            raise ValueError(f"{len(data)} bytes at offset {offset} overflow region {self.name} ({self.byte_size} B)")
        self._map[offset:end] = data

    def view(self, offset: int = 0, length: int | None = None) -> memoryview:
        assert self._map is not None, "region is not mapped"
        end = self.byte_size if length is None else offset + length
        return memoryview(self._map)[offset:end]

    def unlink(self) -> None:
        """Unmap, close and remove the segment; safe to call more than once."""
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a view is still alive; the mapping goes with it
                self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class RegionSet:
    """The regions of one run; ``close`` undoes everything this set did, and nothing else."""

    def __init__(self, purpose: str = "run", token: str | None = None) -> None:
        self.token = token or run_token()
        self.purpose = purpose
        self.regions: list[SystemRegion] = []
        self._count = 0

    def create(self, byte_size: int, label: str = "r") -> SystemRegion:
        self._count += 1
        name = f"{NAME_PREFIX}_{self.token}_{self.purpose}_{label}{self._count}"
        region = SystemRegion(name=name, key=f"/{name}", byte_size=byte_size)
        # listed before it exists: a signal that lands mid-creation still finds it in close()
        self.regions.append(region)
        try:
            return region.create()
        except FileExistsError:  # not ours (O_EXCL refused it): close() must never unlink it
            self.regions.remove(region)
            raise

    def register(self, client: InferenceClient, region: SystemRegion) -> None:
        region.registered_with.append(client)  # before the call, for the same reason
        try:
            client.register_system_shared_memory(region.name, region.key, region.byte_size)
        except Exception as exc:
            region.registered_with.remove(client)
            if "allow-client-shm" in str(exc) or "allow_client_shm" in str(exc):
                raise ClientShmRefused(
                    "the server refuses client shared memory: start it with --allow-client-shm=true"
                ) from exc
            raise

    def close(self) -> list[str]:
        """Unregister (by name) and unlink every region; returns the problems met, if any.

        Signals are held back meanwhile (``perfprobe.interrupts.shielded``): a second Ctrl-C
        cannot leave half of the regions behind.
        """
        from perfprobe.interrupts import shielded

        problems: list[str] = []
        with shielded(self.remaining) as shield:
            while self.regions:
                region = self.regions[-1]
                for client in region.registered_with:
                    with shield.step():
                        try:
                            client.unregister_system_shared_memory(region.name)
                        except Exception as exc:  # server gone: nothing left to unregister there
                            problems.append(f"unregister {region.name}: {exc}")
                region.registered_with.clear()
                region.unlink()
                self.regions.pop()
        return problems

    def remaining(self) -> list[str]:
        """The regions not yet released (for a forced exit's last words)."""
        return [region.name for region in self.regions]

    def __enter__(self) -> RegionSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def leftover_segments(token: str | None = None) -> list[str]:
    """perfprobe's segments still in /dev/shm (of one run, when given its token)."""
    prefix = f"{NAME_PREFIX}_{token}_" if token else f"{NAME_PREFIX}_"
    try:
        return sorted(name for name in os.listdir(SHM_DIR) if name.startswith(prefix))
    except FileNotFoundError:
        return []
