"""Request inputs, requested outputs and inference results shared by both protocols.

Inputs encode their bytes once at construction so a load loop can resend them
without touching numpy again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perfprobe.client import datatypes
from perfprobe.client.errors import BAD_RESPONSE, InferenceServerError


@dataclass(frozen=True)
class SharedMemoryRef:
    """Where a tensor lives in a registered shared-memory region."""

    region: str
    byte_size: int
    offset: int = 0


TENSOR_FORMATS = ("binary", "json")  # HTTP: tensors after the JSON header, or as JSON values in it


class InferInput:
    """One named input tensor, either carried in the request or placed in shared memory."""

    __slots__ = ("name", "datatype", "shape", "raw", "array", "shared_memory")

    def __init__(
        self,
        name: str,
        data: Any = None,
        datatype: str | None = None,
        *,
        shape: list[int] | tuple[int, ...] | None = None,
        shared_memory: SharedMemoryRef | None = None,
    ) -> None:
        if data is None and shared_memory is None:
            raise ValueError(f"input {name!r} needs data or a shared-memory reference")
        if data is not None:
            given = np.asarray(data) if not isinstance(data, np.ndarray) else data
            datatype = datatype or datatypes.datatype_of(given)
            self.array = datatypes.to_wire_array(given, datatype)
            self.shape = list(shape) if shape is not None else list(given.shape)
            self.raw: bytes | memoryview | None = datatypes.tensor_bytes(self.array, datatype)
        else:
            if datatype is None or shape is None:
                raise ValueError(f"shared-memory input {name!r} needs its datatype and shape")
            self.array = None
            self.shape = list(shape)
            self.raw = None
        self.name = name
        self.datatype = datatype
        self.shared_memory = shared_memory

    @property
    def byte_size(self) -> int:
        """Bytes this input occupies on the wire or in its region."""
        if self.shared_memory is not None:
            return self.shared_memory.byte_size
        return len(self.raw) if self.raw is not None else 0

    def __repr__(self) -> str:
        return f"InferInput({self.name!r}, {self.datatype}, shape={self.shape})"


@dataclass(frozen=True)
class RequestedOutput:
    """An output the caller asks for; ``class_count`` > 0 asks for top-K classification."""

    name: str
    binary: bool = True
    class_count: int = 0
    shared_memory: SharedMemoryRef | None = None


@dataclass
class OutputTensor:
    """Metadata of one output in a response."""

    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] = field(default_factory=dict)


class InferResult:
    """Outputs of one inference response, decoded lazily into numpy arrays.

    Arrays of fixed-size types are views on the response buffer, not copies.
    """

    def __init__(
        self,
        model_name: str,
        model_version: str,
        request_id: str,
        outputs: list[OutputTensor],
        buffers: dict[str, Any],
        parameters: dict[str, Any],
        raw_response: Any,
    ) -> None:
        self.model_name = model_name
        self.model_version = model_version
        self.id = request_id
        self.outputs = outputs
        self.parameters = parameters
        self.raw_response = raw_response
        self._buffers = buffers
        self._cache: dict[str, np.ndarray] = {}

    @property
    def output_names(self) -> list[str]:
        return [out.name for out in self.outputs]

    def output(self, name: str) -> OutputTensor:
        for out in self.outputs:
            if out.name == name:
                return out
        raise KeyError(f"response has no output {name!r}; it has {self.output_names}")

    def as_numpy(self, name: str) -> np.ndarray | None:
        """The output as an array, or None when it was written to shared memory."""
        if name in self._cache:
            return self._cache[name]
        meta = self.output(name)
        buffer = self._buffers.get(name)
        if buffer is None:
            return None
        try:
            if isinstance(buffer, list):
                array = datatypes.from_json(buffer, meta.datatype, meta.shape)
            else:
                array = datatypes.from_wire(buffer, meta.datatype, meta.shape)
        except ValueError as exc:  # e.g. fewer bytes than the shape needs: the server's answer is wrong
            raise InferenceServerError(
                f"output {name} does not hold a {meta.datatype} tensor of shape {meta.shape}: {exc}",
                failure=BAD_RESPONSE,
            ) from None
        self._cache[name] = array
        return array

    def attach(self, name: str, buffer: bytes | memoryview) -> None:
        """Give an output its bytes after the fact (read back from a shared-memory region)."""
        self._buffers[name] = buffer
        self._cache.pop(name, None)

    @property
    def is_final(self) -> bool:
        """False only for a decoupled model's non-final streamed response."""
        return bool(self.parameters.get("triton_final_response", True))

    def __repr__(self) -> str:
        return f"InferResult({self.model_name!r}, outputs={self.output_names})"
