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

from perfprobe.client import InferenceClient, RequestedOutput, RequestOptions
from perfprobe.client.datatypes import BINARY_ONLY, DATATYPES, numpy_dtype, to_wire_array
from perfprobe.client.model import ModelDescription, TensorSpec
from perfprobe.data import prompts, synthetic
from perfprobe.data.prompts import PromptPlan
from perfprobe.errors import UsageError
from perfprobe.load.trace import PromptLength, RequestTrace
from perfprobe.transport import TensorFormats, transport_for


@dataclass(frozen=True)
class DataOptions:
    source: str = "random"  # zero | random | FILE.json | DIR
    batch_size: int = 1
    shapes: Mapping[str, tuple[int, ...]] | None = None
    datatypes: Mapping[str, str] | None = None  # --shape NAME:dims:TYPE, for a model whose server lists no inputs
    string_length: int = 16
    items: int = 1  # distinct generated items
    seed: int = 0
    prompts: PromptPlan | None = None  # generated data for a generative model: prompts and max_tokens


def with_described_inputs(model: ModelDescription, options: DataOptions) -> tuple[ModelDescription, str]:
    """A model whose server lists no inputs, with the inputs the user's data describes, and a note saying so.

    They come from the first item of ``--input-data FILE.json`` (names, shapes; a tensor's
    ``datatype`` where given, else read from its values) or from ``--shape NAME:dims:DATATYPE``.
    With ``-b`` above 1 the shapes are one sample's and the batch dimension is added in front.
    A model with inputs is returned as it is (and an empty note).
    """
    if model.inputs:
        return model, ""
    path = Path(options.source)
    if options.source not in synthetic.DATA_KINDS and path.is_file():
        specs, guessed = _specs_from_json(path, options)
        source = f"--input-data {path.name}" + (" (datatypes read from the values)" if guessed else "")
    else:
        specs = _specs_from_shapes(model, options)
        source = "--shape"
    described = ", ".join(f"{spec.name} {spec.datatype} {list(spec.shape)}" for spec in specs)
    note = f"{model.name}: the server lists no inputs; sending {described} as {source} describes them"
    return model.with_inputs(tuple(specs), batching=options.batch_size > 1), note


def _no_inputs_known(model: ModelDescription) -> UsageError:
    return UsageError(
        f"{model.name}: the server does not say which inputs it takes; describe them with --input-data FILE.json "
        "(perf_analyzer's format: content and shape per input) or --shape NAME:d1,d2:DATATYPE per input"
    )


def _specs_from_shapes(model: ModelDescription, options: DataOptions) -> list[TensorSpec]:
    shapes, datatypes = dict(options.shapes or {}), dict(options.datatypes or {})
    if not shapes:
        raise _no_inputs_known(model)
    untyped = sorted(set(shapes) - set(datatypes))
    if untyped:
        raise UsageError(
            f"{model.name}: the server does not say the datatype of {', '.join(untyped)}; "
            f"add it to --shape ({untyped[0]}:{','.join(map(str, shapes[untyped[0]]))}:INT32, FP32, ...)"
        )
    return [TensorSpec(name, datatypes[name], dims) for name, dims in shapes.items()]


def _specs_from_json(path: Path, options: DataOptions) -> tuple[list[TensorSpec], bool]:
    """The inputs the file's first item names (its first step, for sequence data); whether a datatype was guessed."""
    first = _json_entries(path)[0]
    if isinstance(first, list) and first:
        first = first[0]
    if not isinstance(first, dict) or not first:
        raise UsageError(f"{path}: item 0 names no inputs")
    specs, guessed = [], False
    for name, value in first.items():
        where = f"{path} item 0: input {name}"
        content = value.get("content", value.get("b64")) if isinstance(value, dict) else value
        datatype = str(value.get("datatype", "")).upper() if isinstance(value, dict) else ""
        if not datatype:
            if isinstance(value, dict) and "b64" in value:
                raise UsageError(f'{where}: base64 data needs its "datatype" (the server does not say it)')
            datatype, guessed = _datatype_of(content, where), True
        elif datatype not in DATATYPES:
            raise UsageError(f"{where}: unknown datatype {datatype!r}")
        if isinstance(value, dict) and "shape" in value:
            shape = _json_shape(value["shape"], where)
        elif name in (options.shapes or {}):
            shape = tuple((options.shapes or {})[name])
        elif isinstance(value, dict) and "b64" in value:
            raise UsageError(f"{where}: base64 data needs its 'shape' (the server does not say it)")
        else:
            shape = _shape_of(content, where)
        specs.append(TensorSpec(name, datatype, tuple(int(d) for d in shape)))
    return specs, guessed


def _shape_of(content: Any, where: str) -> tuple[int, ...]:
    try:
        return tuple(np.asarray(content).shape)
    except ValueError:
        raise UsageError(f"{where}: its values are not a regular array; give its 'shape'") from None


def _datatype_of(content: Any, where: str) -> str:
    """The datatype JSON values imply: whole numbers INT32 (INT64 when they need it), numbers FP32, text BYTES."""
    try:
        array = np.asarray(content)
    except ValueError:
        raise UsageError(f"{where}: its values are not a regular array") from None
    if array.dtype.kind == "b":
        return "BOOL"
    if array.dtype.kind in "iu":
        fits = array.size == 0 or (array.min() >= np.iinfo(np.int32).min and array.max() <= np.iinfo(np.int32).max)
        return "INT32" if fits else "INT64"
    if array.dtype.kind == "f":
        return "FP32"
    if array.dtype.kind in "US":
        return "BYTES"
    raise UsageError(f'{where}: cannot tell its datatype from its values; give "datatype"')


def load_items(model: ModelDescription, options: DataOptions) -> list[dict[str, np.ndarray]]:
    """Input arrays per data item, with the batch dimension when the model batches."""
    unknown = sorted(set(options.shapes or {}) - {spec.name for spec in model.inputs})
    if unknown:
        known = ", ".join(spec.name for spec in model.inputs)
        raise UsageError(f"--shape names {', '.join(unknown)}, which {model.name} does not have (its inputs: {known})")
    if options.source in synthetic.DATA_KINDS:
        if options.items < 1:
            raise UsageError("the number of data items must be at least 1")
        if options.prompts is not None and options.prompts.applies_to(model):
            return _prompted(model, options, options.prompts)
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


def _prompted(model: ModelDescription, options: DataOptions, plan: PromptPlan) -> list[dict[str, np.ndarray]]:
    """Synthetic prompts (and max_tokens) for a generative model; any other input generated as usual."""
    if options.batch_size != 1:
        raise UsageError("prompts are sent one per request: use batch size 1")
    items = []
    for index, prompt in enumerate(prompts.prompt_items(model, plan)):
        rest = synthetic.generate_inputs(model, 1, options.shapes, options.source, options.seed + index,
                                         options.string_length)  # fmt: skip
        items.append({**rest, **prompt})
    return items


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
    entries = _json_entries(path)
    if any(isinstance(entry, list) for entry in entries):
        raise UsageError(f"{path}: lists of steps (sequence data) need a model with a sequence batcher")
    return [_json_sample(model, path, entry, f"item {number}", options) for number, entry in enumerate(entries)]


def _json_entries(path: Path) -> list[Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read input data {path}: {exc}") from None
    entries = document.get("data") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UsageError(f'{path}: expected {{"data": [{{"INPUT": [...]}}, ...]}} with at least one entry')
    return entries


def _json_sample(
    model: ModelDescription, path: Path, entry: Any, where: str, options: DataOptions
) -> dict[str, np.ndarray]:
    if not isinstance(entry, dict):
        raise UsageError(f"{path}: {where} is not an object")
    sample = {}
    for spec in model.inputs:
        if spec.name not in entry:
            if spec.optional:
                continue
            raise UsageError(f"{path}: {where} has no input {spec.name}")
        sample[spec.name] = _json_tensor(
            spec.name, spec.datatype, spec.shape, entry[spec.name], options.shapes or {}, f"{path} {where}"
        )
    unknown = set(entry) - {s.name for s in model.inputs}
    if unknown:
        raise UsageError(f"{path}: {where} names unknown inputs {sorted(unknown)}")
    return sample


def trace_items(model: ModelDescription, trace: RequestTrace, options: DataOptions) -> list[dict[str, np.ndarray]]:
    """The data of the trace's requests that carry their own (inputs, or a prompt's lengths), in the trace's order."""
    path = Path(trace.path)
    items = []
    for line, own in trace.own_items():
        if isinstance(own, PromptLength):
            if options.prompts is None:
                raise UsageError(f"--request-trace {path} line {line}: input_length needs a generative model")
            rng = np.random.default_rng(options.prompts.seed + line)
            items.append(prompts.prompt_item(model, options.prompts, own.input_length, own.output_length, rng))
            continue
        sample = _json_sample(model, path, own, f"line {line}", options)
        items.extend(_batch(model, [sample], options.batch_size))
    return items


def load_sequence_data(
    model: ModelDescription, options: DataOptions
) -> tuple[list[dict[str, np.ndarray]], list[tuple[int, ...]]]:
    """A stateful model's data: the items, and per data stream the items its steps send, in order.

    A JSON file may hold a list of steps per stream (perf_analyzer's sequence format); a flat
    list, generated data or a folder is one stream that sequences cycle through.
    """
    path = Path(options.source)
    if options.source in synthetic.DATA_KINDS or not path.is_file():
        items = load_items(model, options)
        return items, [tuple(range(len(items)))]
    entries = _json_entries(path)
    if not any(isinstance(entry, list) for entry in entries):
        items = load_items(model, options)
        return items, [tuple(range(len(items)))]
    if options.batch_size != 1:
        raise UsageError("sequence data streams send one step per request: use batch size 1")
    items: list[dict[str, np.ndarray]] = []
    streams = []
    for number, stream in enumerate(entries):
        if not isinstance(stream, list) or not stream:
            raise UsageError(f"{path}: data stream {number} must be a non-empty list of steps")
        first = len(items)
        for step, entry in enumerate(stream):
            sample = _json_sample(model, path, entry, f"stream {number} step {step}", options)
            items.extend(_batch(model, [sample], 1))
        streams.append(tuple(range(first, len(items))))
    return items, streams


def _json_tensor(
    name: str, datatype: str, dims: tuple[int, ...], value: Any, overrides: Mapping[str, tuple[int, ...]], where: str
) -> np.ndarray:
    where = f"{where}: input {name}"
    shape = None
    if isinstance(value, dict):
        if "shape" in value:
            shape = _json_shape(value["shape"], where)
        if "b64" in value:
            array = _from_base64(value["b64"], datatype, where)
        elif "content" in value:
            array = _values(value["content"], datatype, where)
        else:
            raise UsageError(f"{where}: an object needs 'content' or 'b64'")
    else:
        array = _values(value, datatype, where)
    if shape is None:
        shape = overrides.get(name) or (dims if not any(d < 0 for d in dims) else array.shape)
    try:
        return array.reshape(shape)
    except ValueError:
        raise UsageError(f"{where}: {array.size} values do not fit shape {list(shape)}") from None


def _json_shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in value):
        raise UsageError(f"{where}: 'shape' must be a list of whole numbers, not {value!r}")
    if any(d < 0 for d in value):
        raise UsageError(f"{where}: 'shape' cannot have negative dimensions: {value}")
    return tuple(value)


def _from_base64(text: Any, datatype: str, where: str) -> np.ndarray:
    try:
        raw = base64.b64decode(text, validate=True)
    except (TypeError, ValueError) as exc:  # binascii.Error is a ValueError
        raise UsageError(f"{where}: 'b64' is not valid base64 ({exc})") from None
    if datatype == "BYTES":
        return np.array([raw], dtype=object)
    dtype = numpy_dtype(datatype)
    if len(raw) % dtype.itemsize:
        raise UsageError(
            f"{where}: 'b64' holds {len(raw)} bytes, not a whole number of {datatype} elements "
            f"({dtype.itemsize} bytes each)"
        )
    return np.frombuffer(raw, dtype=dtype)


def _values(content: Any, datatype: str, where: str) -> np.ndarray:
    """JSON values as a flat array of ``datatype``; anything that would not survive the cast is refused."""
    if content is None:
        raise UsageError(f"{where}: no values (null)")
    if datatype == "BYTES":
        flat = _flatten(content, where)
        if not all(isinstance(v, str) for v in flat):
            wrong = next(v for v in flat if not isinstance(v, str))
            raise UsageError(f"{where}: BYTES values must be strings, not {type(wrong).__name__} ({wrong!r})")
        array = np.empty(len(flat), dtype=object)
        array[:] = [v.encode() for v in flat]
        return array
    try:
        given = np.asarray(content)
    except ValueError:
        _flatten(content, where)  # says which lists are ragged
        raise UsageError(f"{where}: values of uneven nesting") from None
    target = np.dtype(np.float32) if datatype == "BF16" else numpy_dtype(datatype)
    _check_fits(given, datatype, target, where)
    return given.astype(target).reshape(-1)


def _check_fits(given: np.ndarray, datatype: str, target: np.dtype, where: str) -> None:
    kind = given.dtype.kind
    if kind in "US":
        raise UsageError(f"{where}: strings where {datatype} numbers are expected")
    if kind == "O":
        if all(isinstance(v, int) and not isinstance(v, bool) for v in given.reshape(-1)):
            raise UsageError(f"{where}: a value does not fit {datatype}")
        raise UsageError(f"{where}: values must be {datatype} numbers (found null, lists or objects among them)")
    if target.kind == "b":
        if kind != "b":
            raise UsageError(f"{where}: BOOL values must be true or false")
        return
    if kind == "b":
        raise UsageError(f"{where}: true/false where {datatype} numbers are expected")
    if given.size == 0:
        return
    if target.kind in "iu":
        if kind == "f" and (not np.all(np.isfinite(given)) or not np.all(given == np.round(given))):
            raise UsageError(f"{where}: {datatype} needs whole numbers; found a fraction (e.g. 1.7)")
        limits = np.iinfo(target)
        low, high = given.min(), given.max()
        if low < limits.min or high > limits.max:
            bad = high if high > limits.max else low
            raise UsageError(f"{where}: {bad} does not fit {datatype} ({limits.min}..{limits.max})")
        return
    cast = given.astype(target)
    if np.any(np.isfinite(given) & ~np.isfinite(cast)):
        raise UsageError(f"{where}: a value is too large for {datatype}")


def _flatten(value: Any, where: str) -> list[Any]:
    """Nested lists as one flat list, refusing ragged nesting (lists of different lengths)."""
    if not isinstance(value, list):
        return [value]
    if any(isinstance(v, list) for v in value):
        if not all(isinstance(v, list) for v in value) or len({len(v) for v in value}) > 1:
            raise UsageError(f"{where}: ragged values: its nested lists differ in length")
        return [item for v in value for item in _flatten(v, where)]
    return list(value)


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
    *,
    json_inputs: bool = False,
    json_outputs: bool = False,
    endpoint: str = "infer",
) -> list[Any]:
    """Encode each data item once into the client's ready-to-send request.

    ``json_inputs`` / ``json_outputs``: HTTP's tensors as JSON values instead of binary data (an
    FP16 or BF16 tensor stays binary: JSON cannot carry it, and Triton refuses to try).
    """
    outputs = [
        RequestedOutput(spec.name, binary=not json_outputs or spec.datatype in BINARY_ONLY) for spec in model.outputs
    ]
    options = options_for(model, options)
    transport = transport_for(client.protocol, endpoint)
    formats = TensorFormats(json_inputs, json_outputs)
    requests = []
    for item in items:
        arrays = {name: to_wire_array(array, model.input(name).datatype) for name, array in item.items()}
        try:
            requests.append(transport.prepare(client, model, arrays, outputs, options, formats))
        except ValueError as exc:  # data this format cannot carry (JSON: BYTES that are not text)
            raise UsageError(f"{model.name}: {exc}") from None
    return requests
