"""Request data for a load run, encoded into ready-to-send requests once, before the load starts.

Sources: generated (``zero`` / ``random``), perf_analyzer's JSON input-data format, or a
folder with one raw file per input. Each data item becomes one prepared request; the
workers cycle through them, so the hot path never touches numpy or JSON.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perfprobe.client import InferenceClient, InferInput, RequestedOutput, RequestOptions
from perfprobe.client.datatypes import numpy_dtype, to_wire_array
from perfprobe.client.model import ModelDescription
from perfprobe.data import synthetic
from perfprobe.errors import UsageError


@dataclass(frozen=True)
class DataOptions:
    source: str = "random"  # zero | random | FILE.json | DIR
    batch_size: int = 1
    shapes: Mapping[str, tuple[int, ...]] | None = None
    string_length: int = 16
    items: int = 1  # distinct generated items
    seed: int = 0


def load_items(model: ModelDescription, options: DataOptions) -> list[dict[str, np.ndarray]]:
    """Input arrays per data item, with the batch dimension when the model batches."""
    if options.source in synthetic.DATA_KINDS:
        if options.items < 1:
            raise UsageError("the number of data items must be at least 1")
        return [
            synthetic.generate_inputs(
                model,
                options.batch_size,
                options.shapes,
                options.source,
                seed=options.seed + index,
                string_length=options.string_length,
            )
            for index in range(options.items)
        ]
    path = Path(options.source)
    if path.is_dir():
        samples = [_read_folder(model, path, options)]
    elif path.is_file():
        samples = _read_json(model, path, options)
    else:
        raise UsageError(f"--input-data {options.source!r}: not zero, random, a JSON file or a folder")
    return _batch(model, samples, options.batch_size)


def _batch(model: ModelDescription, samples: list[dict[str, np.ndarray]], batch: int) -> list[dict[str, np.ndarray]]:
    if not model.batching:
        if batch != 1:
            raise UsageError(f"{model.name} does not batch (max_batch_size 0): use batch size 1")
        return samples
    if batch > model.max_batch_size:
        raise UsageError(f"batch size {batch} exceeds {model.name}'s max_batch_size {model.max_batch_size}")
    items = []
    for start in range(len(samples)):
        chosen = [samples[(start + k) % len(samples)] for k in range(batch)]
        items.append({name: np.stack([c[name] for c in chosen]) for name in chosen[0]})
    return items


def _read_json(model: ModelDescription, path: Path, options: DataOptions) -> list[dict[str, np.ndarray]]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read input data {path}: {exc}") from None
    entries = document.get("data") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UsageError(f'{path}: expected {{"data": [{{"INPUT": [...]}}, ...]}} with at least one entry')
    samples = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise UsageError(f"{path}: data entry {number} is not an object")
        sample = {}
        for spec in model.inputs:
            if spec.name not in entry:
                if spec.optional:
                    continue
                raise UsageError(f"{path}: data entry {number} has no input {spec.name}")
            sample[spec.name] = _json_tensor(
                spec.name, spec.datatype, spec.shape, entry[spec.name], options.shapes or {}, f"{path} entry {number}"
            )
        unknown = set(entry) - {s.name for s in model.inputs}
        if unknown:
            raise UsageError(f"{path}: data entry {number} names unknown inputs {sorted(unknown)}")
        samples.append(sample)
    return samples


def _json_tensor(
    name: str, datatype: str, dims: tuple[int, ...], value: Any, overrides: Mapping[str, tuple[int, ...]], where: str
) -> np.ndarray:
    shape = None
    if isinstance(value, dict):
        shape = tuple(value["shape"]) if "shape" in value else None
        if "b64" in value:
            raw = base64.b64decode(value["b64"])
            if datatype == "BYTES":
                array = np.array([raw], dtype=object)
            else:
                array = np.frombuffer(raw, dtype=numpy_dtype(datatype))
        elif "content" in value:
            array = _values(value["content"], datatype)
        else:
            raise UsageError(f"{where}: input {name} object needs 'content' or 'b64'")
    else:
        array = _values(value, datatype)
    if shape is None:
        shape = overrides.get(name) or (dims if not any(d < 0 for d in dims) else array.shape)
    try:
        return array.reshape(shape)
    except ValueError:
        raise UsageError(
            f"{where}: input {name} has {array.size} values, which do not fit shape {list(shape)}"
        ) from None


def _values(content: Any, datatype: str) -> np.ndarray:
    if datatype == "BYTES":
        flat = np.asarray(content, dtype=object).reshape(-1)
        array = np.empty(flat.size, dtype=object)
        array[:] = [v.encode() if isinstance(v, str) else bytes(v) for v in flat]
        return array
    return np.asarray(content, dtype=np.float32 if datatype == "BF16" else numpy_dtype(datatype)).reshape(-1)


def _read_folder(model: ModelDescription, folder: Path, options: DataOptions) -> dict[str, np.ndarray]:
    sample = {}
    for spec in model.inputs:
        file = folder / spec.name
        if not file.exists():
            if spec.optional:
                continue
            raise UsageError(f"{folder}: no file {spec.name} for input {spec.name}")
        raw = file.read_bytes()
        if spec.datatype == "BYTES":
            array = np.array([raw], dtype=object)
        else:
            array = np.frombuffer(raw, dtype=numpy_dtype("UINT16" if spec.datatype == "BF16" else spec.datatype))
        shape = synthetic.resolve_shape(spec, options.shapes or {}) if spec.datatype != "BYTES" else (1,)
        if array.size != int(np.prod(shape)):
            raise UsageError(f"{file}: {array.size} elements do not fit shape {list(shape)}")
        sample[spec.name] = array.reshape(shape)
    return sample


def options_for(model: ModelDescription, options: RequestOptions | None = None) -> RequestOptions | None:
    """Request options for a load run: a decoupled model is asked for an empty final response,
    so the end of each request is known even when it sends no data response."""
    if not model.decoupled:
        return options
    base = options or RequestOptions()
    params = {**base.parameters, "triton_enable_empty_final_response": True}
    return RequestOptions(**{**base.__dict__, "parameters": params})


def build_requests(
    client: InferenceClient,
    model: ModelDescription,
    items: list[dict[str, np.ndarray]],
    options: RequestOptions | None = None,
) -> list[Any]:
    """Encode each data item once into the client's ready-to-send request."""
    outputs = [RequestedOutput(spec.name) for spec in model.outputs]
    options = options_for(model, options)
    requests = []
    for item in items:
        inputs = [
            InferInput(
                name,
                to_wire_array(array, model.input(name).datatype),
                model.input(name).datatype,
                shape=list(array.shape),
            )
            for name, array in item.items()
        ]
        requests.append(client.build_request(model.name, inputs, outputs, options))
    return requests
