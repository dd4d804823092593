"""Tensor datatypes of the KServe v2 protocol and their numpy encodings.

The wire formats are fixed by the protocol: fixed-size types travel as little-endian
row-major bytes, BYTES as a 4-byte little-endian length before each element, and BF16
as the upper 16 bits of an IEEE float32 (numpy has no bfloat16, so we carry it as uint16).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

# protocol datatype -> numpy dtype of the bytes on the wire (little-endian)
_WIRE_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BF16": np.dtype("<u2"),
    "BYTES": np.dtype(np.object_),
}

DATATYPES: tuple[str, ...] = tuple(_WIRE_DTYPES)

# datatypes that JSON (non-binary) HTTP tensors cannot carry
BINARY_ONLY: frozenset[str] = frozenset({"FP16", "BF16"})

_LENGTH = struct.Struct("<I")


def config_to_datatype(config_type: str) -> str:
    """Map a model-config enum name (``TYPE_FP32``, ``TYPE_STRING``) to a protocol datatype."""
    name = config_type.removeprefix("TYPE_")
    return "BYTES" if name == "STRING" else name


def numpy_dtype(datatype: str) -> np.dtype:
    """The numpy dtype a protocol datatype is carried as (BF16 as uint16 bit patterns)."""
    try:
        return _WIRE_DTYPES[datatype]
    except KeyError:
        raise ValueError(f"unknown datatype {datatype!r}; expected one of {', '.join(DATATYPES)}") from None


def datatype_of(array: np.ndarray) -> str:
    """Infer the protocol datatype of a numpy array (strings and bytes map to BYTES)."""
    kind = array.dtype.kind
    if kind in "OSU":
        return "BYTES"
    for name, dtype in _WIRE_DTYPES.items():
        if name not in ("BF16", "BYTES") and dtype == array.dtype.newbyteorder("<"):
            return name
    raise ValueError(f"numpy dtype {array.dtype} has no KServe v2 datatype")


def element_size(datatype: str) -> int:
    """Bytes per element of a fixed-size datatype (BYTES has none)."""
    if datatype == "BYTES":
        raise ValueError("BYTES elements have no fixed size")
    return numpy_dtype(datatype).itemsize


def float_to_bf16(values: np.ndarray) -> np.ndarray:
    """Round float32 values to bfloat16 (nearest, ties to even) as uint16 bit patterns."""
    bits = np.ascontiguousarray(values, dtype="<f4").view("<u4")
    rounding = ((bits >> 16) & 1) + 0x7FFF
    rounded = ((bits + rounding) >> 16).astype("<u2")
    nan = np.isnan(values)
    if nan.any():
        rounded[nan] = 0x7FC0
    return rounded


def bf16_to_float(bits: np.ndarray) -> np.ndarray:
    """Widen bfloat16 bit patterns (uint16) to float32 exactly."""
    return (np.asarray(bits, dtype="<u2").astype("<u4") << 16).view("<f4")


def serialize_bytes(array: np.ndarray) -> bytes:
    """Encode a BYTES tensor: per element, its length as uint32 LE then its bytes."""
    parts: list[bytes] = []
    for item in np.asarray(array, dtype=object).reshape(-1):
        raw = item.encode("utf-8") if isinstance(item, str) else bytes(item)
        parts.append(_LENGTH.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def deserialize_bytes(buffer: bytes | memoryview, count: int | None = None) -> np.ndarray:
    """Decode a BYTES tensor into a 1-D object array of ``bytes`` (reshape it afterwards)."""
    view = memoryview(buffer)
    items: list[bytes] = []
    offset = 0
    end = len(view)
    while offset < end and (count is None or len(items) < count):
        if offset + 4 > end:
            raise ValueError("truncated BYTES tensor: length prefix cut short")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > end:
            raise ValueError("truncated BYTES tensor: element shorter than its length prefix")
        items.append(bytes(view[offset : offset + length]))
        offset += length
    result = np.empty(len(items), dtype=object)
    result[:] = items
    return result


def to_wire_array(values: Any, datatype: str) -> np.ndarray:
    """Cast user data to the array whose bytes go on the wire for ``datatype``."""
    if datatype == "BYTES":
        return np.asarray(values, dtype=object)
    if datatype == "BF16":
        array = np.asarray(values)
        if array.dtype == np.uint16:
            return np.ascontiguousarray(array, dtype="<u2")
        return float_to_bf16(array.astype(np.float32))
    return np.ascontiguousarray(values, dtype=numpy_dtype(datatype))


def tensor_bytes(array: np.ndarray, datatype: str) -> bytes | memoryview:
    """Raw little-endian bytes of a wire array (a zero-copy view where possible)."""
    if datatype == "BYTES":
        return serialize_bytes(array)
    contiguous = np.ascontiguousarray(array)
    return memoryview(contiguous).cast("B") if contiguous.size else b""


def from_wire(buffer: bytes | memoryview, datatype: str, shape: list[int] | tuple[int, ...]) -> np.ndarray:
    """Decode raw output bytes into a numpy array (a view on ``buffer`` for fixed-size types)."""
    count = int(np.prod(shape)) if len(shape) else 1
    if datatype == "BYTES":
        return deserialize_bytes(buffer, count).reshape(shape)
    dtype = numpy_dtype(datatype)
    array = np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)
    if datatype == "BF16":
        return bf16_to_float(array).reshape(shape)
    return array


def json_values(array: np.ndarray, datatype: str) -> list[Any]:
    """Flatten an array into JSON-ready values for a non-binary HTTP tensor."""
    if datatype in BINARY_ONLY:
        raise ValueError(f"{datatype} tensors can only be sent as binary data")
    flat = np.asarray(array).reshape(-1)
    if datatype == "BYTES":
        try:
            return [item.decode("utf-8") if isinstance(item, bytes) else str(item) for item in flat]
        except UnicodeDecodeError:
            raise ValueError("a BYTES element that is not UTF-8 text: JSON carries only text, send it binary") from None
    return flat.tolist()


def from_json(values: list[Any], datatype: str, shape: list[int]) -> np.ndarray:
    """Build an array from a JSON tensor's flat ``data`` list."""
    if datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = [v.encode("utf-8") if isinstance(v, str) else v for v in values]
        return array.reshape(shape)
    return np.asarray(values, dtype=numpy_dtype(datatype)).reshape(shape)
