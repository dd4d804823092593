"""CUDA shared-memory regions through cuda-python (``cuda.bindings.runtime``).

A region is device memory from cudaMalloc whose IPC handle (64 raw bytes) is registered
with the server; tensors move host<->device with cudaMemcpy. Where there is no device or
driver, ``require_device`` refuses before anything is allocated, with the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perfprobe.client import InferenceClient

import ctypes
from dataclasses import dataclass, field
from typing import Any

from perfprobe.errors import PerfprobeError
from perfprobe.exitcodes import SERVER_UNAVAILABLE


class CudaUnavailable(PerfprobeError):
    """No usable CUDA device here: CUDA shared memory cannot run."""

    exit_code = SERVER_UNAVAILABLE


def _runtime() -> Any:
    try:
        from cuda.bindings import runtime
    except ImportError as exc:
        raise CudaUnavailable(f"CUDA shared memory needs cuda-python: pip install 'perfprobe[cuda]' ({exc})") from None
    return runtime


def _check(result: tuple[Any, ...], what: str) -> Any:
    runtime = _runtime()
    error, *values = result
    if error != runtime.cudaError_t.cudaSuccess:
        _, message = runtime.cudaGetErrorString(error)
        raise CudaUnavailable(f"{what} failed: {message.decode() if isinstance(message, bytes) else message}")
    return values[0] if len(values) == 1 else values


def require_device(device_id: int = 0) -> None:
    """Refuse, with the reason, unless ``device_id`` is a usable CUDA device."""
    runtime = _runtime()
    error, count = runtime.cudaGetDeviceCount()
    if error != runtime.cudaError_t.cudaSuccess:
        _, message = runtime.cudaGetErrorString(error)
        reason = message.decode() if isinstance(message, bytes) else str(message)
        raise CudaUnavailable(f"CUDA shared memory needs a CUDA device: {reason}")
    if count == 0:
        raise CudaUnavailable("CUDA shared memory needs a CUDA device: none was found")
    if not 0 <= device_id < count:
        raise CudaUnavailable(f"CUDA shared memory needs a CUDA device: device {device_id} of {count} does not exist")


@dataclass
class CudaRegion:
    """Device memory shared with the server through a CUDA IPC handle."""

    name: str
    byte_size: int
    device_id: int = 0
    _pointer: int = 0
    registered_with: list[Any] = field(default_factory=list)

    def create(self) -> CudaRegion:
        require_device(self.device_id)
        runtime = _runtime()
        _check(runtime.cudaSetDevice(self.device_id), "cudaSetDevice")
        self._pointer = int(_check(runtime.cudaMalloc(self.byte_size), "cudaMalloc"))
        return self

    def raw_handle(self) -> bytes:
        """The 64 bytes of the IPC handle, as the server's register call wants them."""
        runtime = _runtime()
        handle = _check(runtime.cudaIpcGetMemHandle(self._pointer), "cudaIpcGetMemHandle")
        return ctypes.string_at(handle.getPtr(), runtime.CUDA_IPC_HANDLE_SIZE)

    def register(self, client: Any) -> None:
        self.registered_with.append(client)  # before the call: a signal mid-call still unregisters it
        try:
            client.register_cuda_shared_memory(self.name, self.raw_handle(), self.device_id, self.byte_size)
        except Exception:
            self.registered_with.remove(client)
            raise

    def write(self, data: bytes, offset: int = 0) -> None:
        runtime = _runtime()
        buffer = ctypes.create_string_buffer(bytes(data), len(data))
        kind = runtime.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(runtime.cudaMemcpy(self._pointer + offset, ctypes.addressof(buffer), len(data), kind), "cudaMemcpy")

    def view(self, offset: int = 0, length: int | None = None) -> memoryview:
        """A host copy of the region's bytes (device memory cannot be mapped into this process)."""
        return memoryview(self.read(self.byte_size - offset if length is None else length, offset))

    def read(self, length: int, offset: int = 0) -> bytes:
        runtime = _runtime()
        buffer = ctypes.create_string_buffer(length)
        kind = runtime.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(runtime.cudaMemcpy(ctypes.addressof(buffer), self._pointer + offset, length, kind), "cudaMemcpy")
        return buffer.raw

    def close(self) -> list[str]:
        """Unregister from every server it was registered with, then free the memory."""
        problems = []
        try:
            for client in self.registered_with:
                try:
                    client.unregister_cuda_shared_memory(self.name)
                except Exception as exc:
                    problems.append(f"unregister {self.name}: {exc}")
        finally:  # freed even when an interrupt is thrown into an unregister call
            self.registered_with.clear()
            if self._pointer:
                _check(_runtime().cudaFree(self._pointer), "cudaFree")
                self._pointer = 0
        return problems


class CudaRegionSet:
    """The CUDA regions of one run, with the same calls as the system ``RegionSet``.

    Names are unique per run; ``close`` unregisters only these regions, by name, and frees
    their device memory — on every way out, as for system shared memory.
    """

    def __init__(self, purpose: str = "run", device_id: int = 0, token: str | None = None) -> None:
        from perfprobe.shm.system import NAME_PREFIX, run_token

        require_device(device_id)  # refuse before anything is allocated or registered
        self.prefix = f"{NAME_PREFIX}_{token or run_token()}_{purpose}_cuda_"
        self.device_id = device_id
        self.regions: list[CudaRegion] = []

    def create(self, byte_size: int, label: str = "r") -> CudaRegion:
        region = CudaRegion(f"{self.prefix}{label}{len(self.regions) + 1}", byte_size, self.device_id)
        self.regions.append(region)  # listed before the allocation, so close() sees it whatever happens
        return region.create()

    def register(self, client: InferenceClient, region: CudaRegion) -> None:
        region.register(client)

    def close(self) -> list[str]:
        """Unregister and free every region, with signals held back until done (as for system shm)."""
        from perfprobe.interrupts import shielded

        problems: list[str] = []
        with shielded(self.remaining) as shield:
            while self.regions:
                region = self.regions[-1]
                with shield.step():
                    try:
                        problems += region.close()
                    except CudaUnavailable as exc:
                        problems.append(f"free {region.name}: {exc}")
                self.regions.pop()
        return problems

    def remaining(self) -> list[str]:
        return [region.name for region in self.regions]

    def __enter__(self) -> CudaRegionSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
