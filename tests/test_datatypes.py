"""Wire encodings of tensors, checked without a server."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from perfprobe.client import datatypes


def test_bytes_encoding_is_length_prefixed_little_endian() -> None:
    array = np.array([b"ab", b"", b"\x00z\x00"], dtype=object)
    raw = datatypes.serialize_bytes(array)
    assert raw == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0) + struct.pack("<I", 3) + b"\x00z\x00"
    back = datatypes.deserialize_bytes(raw)
    assert list(back) == [b"ab", b"", b"\x00z\x00"]


def test_truncated_bytes_tensor_is_an_error() -> None:
    with pytest.raises(ValueError, match="truncated"):
        datatypes.deserialize_bytes(struct.pack("<I", 5) + b"abc")


def test_bf16_rounds_to_nearest_even_and_widens_exactly() -> None:
    values = np.array([1.0, -2.5, 1.00390625, 1.01171875, np.inf, 0.0], dtype=np.float32)
    bits = datatypes.float_to_bf16(values)
    assert bits.dtype == np.dtype("<u2")
    # 1.00390625 lies halfway between bf16 1.0 and 1.0078125: ties go to the even one (1.0)
    assert bits.tolist()[:4] == [0x3F80, 0xC020, 0x3F80, 0x3F82]
    widened = datatypes.bf16_to_float(bits)
    assert widened[0] == 1.0 and widened[1] == -2.5 and np.isinf(widened[4])
    assert np.isnan(datatypes.bf16_to_float(datatypes.float_to_bf16(np.array([np.nan], np.float32))))[0]


@pytest.mark.parametrize("name", [d for d in datatypes.DATATYPES if d not in ("BYTES", "BF16")])
def test_fixed_size_types_round_trip_through_bytes(name: str) -> None:
    rng = np.random.default_rng(3)
    source = (rng.random(12) * 100).astype(datatypes.numpy_dtype(name))
    wire = datatypes.to_wire_array(source, name)
    raw = bytes(datatypes.tensor_bytes(wire, name))
    assert len(raw) == 12 * datatypes.element_size(name)
    np.testing.assert_array_equal(datatypes.from_wire(raw, name, [3, 4]), source.reshape(3, 4))


def test_datatype_inference_and_config_names() -> None:
    assert datatypes.datatype_of(np.zeros(2, np.int16)) == "INT16"
    assert datatypes.datatype_of(np.array(["x"])) == "BYTES"
    assert datatypes.config_to_datatype("TYPE_STRING") == "BYTES"
    assert datatypes.config_to_datatype("TYPE_FP16") == "FP16"
    with pytest.raises(ValueError):
        datatypes.numpy_dtype("FP8")
    with pytest.raises(ValueError, match="binary"):
        datatypes.json_values(np.zeros(2, np.float16), "FP16")


class _FakeSocket:
    """A stand-in socket that returns canned bytes in small pieces (no server can split replies at will)."""

    def __init__(self, data: bytes, piece: int = 7) -> None:
        self._data, self._piece = data, piece

    def recv(self, size: int) -> bytes:
        chunk, self._data = self._data[: min(size, self._piece)], self._data[min(size, self._piece) :]
        return chunk

    def recv_into(self, view, size: int) -> int:
        chunk = self.recv(size)
        view[: len(chunk)] = chunk
        return len(chunk)


def test_http_response_parsing_content_length_and_chunked() -> None:
    from perfprobe.client.http_wire import read_response

    plain = (
        b"HTTP/1.1 200 OK\r\nContent-Type: x\r\ninference-header-content-length: 3\r\nContent-Length: 5\r\n\r\nabcde"
    )
    status, headers, body, reusable = read_response(_FakeSocket(plain))
    assert (status, body, reusable) == (200, b"abcde", True)
    assert headers == {"inference-header-content-length": "3", "content-length": "5"}
    chunked = (
        b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    status, headers, body, reusable = read_response(_FakeSocket(chunked))
    assert (status, body, reusable) == (400, b"abcde", False)
