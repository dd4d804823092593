"""Generated input tensors for any model, shaped from its description.

Variable dimensions (-1) must be given by the caller (``--shape NAME:d1,d2``); guessing
them would silently measure a different workload than the user meant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from perfprobe.client.datatypes import DATATYPES, numpy_dtype
from perfprobe.client.model import ModelDescription, TensorSpec
from perfprobe.errors import UsageError

DATA_KINDS = ("random", "zero")


def parse_shape_option(values: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Parse ``NAME:d1,d2[:DATATYPE]`` options into {name: dims}."""
    return {name: dims for name, dims, _ in map(_split_shape, values)}


def parse_shape_datatypes(values: Sequence[str]) -> dict[str, str]:
    """The datatypes ``--shape NAME:d1,d2:DATATYPE`` gave (for a model whose server lists no inputs)."""
    return {name: datatype for name, _, datatype in map(_split_shape, values) if datatype}


def _split_shape(value: str) -> tuple[str, tuple[int, ...], str]:
    head, sep, last = value.rpartition(":")
    datatype = ""
    if sep and last.strip().upper() in DATATYPES:
        datatype = last.strip().upper()
        head, sep, last = head.rpartition(":")
    name, dims = head, last
    if not sep or not name:
        raise UsageError(f"--shape {value!r}: expected NAME:d1,d2,... (and :DATATYPE where the server lists no inputs)")
    try:
        parsed = tuple(int(d) for d in dims.split(",") if d.strip())
    except ValueError:
        raise UsageError(f"--shape {value!r}: dimensions must be whole numbers") from None
    if not parsed or any(d <= 0 for d in parsed):
        raise UsageError(f"--shape {value!r}: dimensions must be positive")
    return name, parsed, datatype


def resolve_shape(spec: TensorSpec, overrides: Mapping[str, tuple[int, ...]]) -> tuple[int, ...]:
    """The concrete shape (without batch) of one input, from the model and ``--shape``."""
    if spec.name in overrides:
        shape = overrides[spec.name]
        if len(shape) != len(spec.shape) or any(m >= 0 and m != s for m, s in zip(spec.shape, shape, strict=True)):
            raise UsageError(
                f"--shape {spec.name}:{','.join(map(str, shape))} does not fit the model's dims {list(spec.shape)}"
            )
        return shape
    if spec.is_variable:
        raise UsageError(
            f"input {spec.name} has a variable dimension {list(spec.shape)}: give it with --shape {spec.name}:d1,..."
        )
    return spec.shape


def make_array(
    datatype: str, shape: tuple[int, ...], kind: str, rng: np.random.Generator, string_length: int = 16
) -> np.ndarray:
    """One tensor of ``datatype`` filled with zeros or random values of a sensible range."""
    if kind not in DATA_KINDS:
        raise UsageError(f"unknown input data kind {kind!r}; expected one of {', '.join(DATA_KINDS)}")
    if datatype == "BYTES":
        array = np.empty(shape, dtype=object)
        if kind == "zero":
            array.fill(b"0" * string_length)
        else:
            letters = rng.integers(ord("a"), ord("z") + 1, size=(int(np.prod(shape)), string_length), dtype=np.uint8)
            array.reshape(-1)[:] = [row.tobytes() for row in letters]
        return array
    dtype = np.dtype(np.float32) if datatype == "BF16" else numpy_dtype(datatype)
    if kind == "zero":
        return np.zeros(shape, dtype=dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.kind in "iu":
        return rng.integers(0, 100, size=shape).astype(dtype)
    return rng.random(size=shape).astype(dtype)


def generate_inputs(
    model: ModelDescription,
    batch_size: int = 1,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    kind: str = "random",
    seed: int = 0,
    string_length: int = 16,
) -> dict[str, np.ndarray]:
    """Arrays for every required input, with the batch dimension when the model batches."""
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, not {batch_size}")
    if model.batching and batch_size > model.max_batch_size:
        raise UsageError(f"batch size {batch_size} exceeds {model.name}'s max_batch_size {model.max_batch_size}")
    if not model.batching and batch_size != 1:
        raise UsageError(f"{model.name} does not batch (max_batch_size 0): use batch size 1")
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for spec in model.inputs:
        if spec.optional and spec.name not in (shapes or {}):
            continue
        shape = resolve_shape(spec, shapes or {})
        if model.batching:
            shape = (batch_size, *shape)
        arrays[spec.name] = make_array(spec.datatype, shape, kind, rng, string_length)
    return arrays
