"""``perfprobe infer``: classify images with a served model, or send it generated data."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

import numpy as np

from perfprobe.client import InferenceClient, InferInput, InferResult, RequestedOutput
from perfprobe.client.abilities import ServerAbilities
from perfprobe.client.errors import InferenceServerError
from perfprobe.client.model import ModelDescription
from perfprobe.commands.common import add_connection_options, add_shared_memory_options, connect
from perfprobe.data import images, synthetic
from perfprobe.errors import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer",
        help="send one inference (images or generated data) and print the result",
        description="Classify images (top-K 'score (index) = label' per image) or, without an image, "
        "send generated data to any model and print its outputs' shapes and first values.",
    )
    parser.add_argument("-m", "--model", required=True, help="model name")
    add_connection_options(parser)
    parser.add_argument("-b", "--batch-size", type=int, default=1, help="images per request (default 1)")
    parser.add_argument("-c", "--classes", type=int, default=1, help="top-K classes to print per image (default 1)")
    parser.add_argument("-s", "--scaling", choices=images.SCALINGS, default="NONE", help="image scaling (default NONE)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("-a", "--async", dest="use_async", action="store_true", help="send asynchronously")
    mode.add_argument("--streaming", action="store_true", help="send on a gRPC bidirectional stream")
    parser.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="NAME:d1,d2[:TYPE]",
        help="shape of an input with variable dimensions; add :DATATYPE where the server lists no inputs",
    )
    parser.add_argument(
        "--input-data", default="random", help="zero, random or a JSON data file, its first item sent (default random)"
    )
    add_shared_memory_options(parser, 1 << 16)
    parser.add_argument("image", nargs="?", help="an image file or a folder of images")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.streaming and args.protocol != "grpc":
        raise UsageError("--streaming needs gRPC: add -i grpc")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {args.batch_size}")
    if args.classes < 1:
        raise UsageError(f"--classes must be at least 1, not {args.classes}")
    if args.shared_memory == "cuda":
        from perfprobe.shm import cuda

        cuda.require_device(args.cuda_device)  # refuse before connecting or allocating anything
    files = images.list_images(args.image) if args.image else []
    models = [args.model] if args.serve and args.model in _builtin() else None
    with connect(args, models=models) as client:
        model = client.describe_model(args.model)
        if files:
            _classify(client, model, files, args)
        else:
            _generated(client, model, args)
    return 0


def _builtin() -> tuple[str, ...]:
    from perfprobe.server.repository import BUILTIN_MODELS

    return BUILTIN_MODELS


def _send(
    client: InferenceClient,
    model: str,
    inputs: list[InferInput],
    outputs: list[RequestedOutput],
    args: argparse.Namespace,
) -> InferResult:
    """One request by the chosen path and transport; shm outputs are read back into the result."""
    kind = getattr(args, "shared_memory", "none")
    if kind == "none":
        return _send_by_mode(client, model, inputs, outputs, args)
    from perfprobe.client import SharedMemoryRef
    from perfprobe.shm import region_set

    with region_set(kind, "infer", getattr(args, "cuda_device", 0)) as regions:
        placed = []
        for item in inputs:
            region = regions.create(max(len(item.raw), 1), "in")
            region.write(item.raw)
            regions.register(client, region)
            placed.append(
                InferInput(
                    item.name,
                    datatype=item.datatype,
                    shape=item.shape,
                    shared_memory=SharedMemoryRef(region.name, len(item.raw)),
                )
            )
        wanted, out_regions = [], {}
        for out in outputs:
            if out.class_count:  # Triton cannot put a classification into shm: it comes on the wire
                wanted.append(out)
                continue
            region = regions.create(args.output_shared_memory_size, "out")
            regions.register(client, region)
            out_regions[out.name] = region
            wanted.append(RequestedOutput(out.name, shared_memory=SharedMemoryRef(region.name, region.byte_size)))
        result = _send_by_mode(client, model, placed, wanted, args)
        for name, region in out_regions.items():
            result.attach(name, bytes(region.view()))  # copied out before the region is unlinked
        return result


def _send_by_mode(
    client: InferenceClient,
    model: str,
    inputs: list[InferInput],
    outputs: list[RequestedOutput],
    args: argparse.Namespace,
) -> InferResult:
    """One request by the chosen path: sync, async (callback) or a gRPC stream."""
    if not (args.use_async or args.streaming):
        return _infer_either_format(client, model, inputs, outputs)
    done = threading.Event()
    box: dict[str, object] = {}

    def callback(result: InferResult | None, error: Exception | None) -> None:
        box["result"], box["error"] = result, error
        done.set()

    request = client.build_request(model, inputs, outputs)
    if args.streaming:
        stream = client.start_stream(callback)  # type: ignore[attr-defined]
        stream.send(request)
        done.wait()
        stream.close()
    else:
        handle = client.send_async(request, callback)
        if hasattr(handle, "join"):  # HTTP async runs on a greenlet: let it run
            handle.join()
        done.wait()
    if box["error"] is not None:
        raise box["error"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]


def _infer_either_format(
    client: InferenceClient, model: str, inputs: list[InferInput], outputs: list[RequestedOutput]
) -> InferResult:
    """One plain request, binary; as JSON values where the server refuses binary tensors (MLServer)."""
    try:
        return client.infer(model, inputs, outputs)
    except InferenceServerError as exc:
        if client.protocol != "http" or exc.http_status not in (400, 415, 422) or _has_binary(client):
            raise
    as_json = [RequestedOutput(out.name, binary=False, class_count=out.class_count) for out in outputs]
    result = client.send(client.build_request(model, inputs, as_json, binary_inputs=False))
    print("note: tensors sent as JSON values: the server refused binary tensor data", file=sys.stderr)
    return result


def _has_binary(client: InferenceClient) -> bool:
    return "binary_tensor_data" in ServerAbilities.from_metadata(client.server_metadata()).extensions


def _classify(client: InferenceClient, model: ModelDescription, files: list[Path], args: argparse.Namespace) -> None:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UsageError(f"{model.name} is not an image classifier (it needs one input and one output)")
    spec, out_spec = model.inputs[0], model.outputs[0]
    batch = args.batch_size
    if model.batching and batch > model.max_batch_size:
        raise UsageError(f"--batch-size {batch} exceeds {model.name}'s max_batch_size {model.max_batch_size}")
    if not model.batching and batch != 1:
        raise UsageError(f"{model.name} does not batch: use --batch-size 1")
    pixels = [images.preprocess(path, spec, args.scaling) for path in files]
    from perfprobe.client.datatypes import to_wire_array

    for start in range(0, len(files), batch):
        chunk = list(range(start, min(start + batch, len(files))))
        padded = chunk + [chunk[-1]] * (batch - len(chunk)) if model.batching else chunk
        stacked = np.stack([pixels[i] for i in padded]) if model.batching else pixels[chunk[0]]
        wire = to_wire_array(stacked, spec.datatype)
        inputs = [InferInput(spec.name, wire, spec.datatype, shape=list(stacked.shape))]
        result = _send(client, model.name, inputs, [RequestedOutput(out_spec.name, class_count=args.classes)], args)
        table = result.as_numpy(out_spec.name)
        rows = table if model.batching else table[np.newaxis, ...]
        for position, index in enumerate(chunk):
            print(f"Image '{files[index]}':")
            for entry in np.asarray(rows[position]).reshape(-1)[: args.classes]:
                score, class_index, label = images.parse_classification(entry)
                print(f"    {score:f} ({class_index}) = {label}")


def _generated(client: InferenceClient, model: ModelDescription, args: argparse.Namespace) -> None:
    from perfprobe.load import dataset

    options = dataset.DataOptions(
        source=args.input_data,
        batch_size=args.batch_size,
        shapes=synthetic.parse_shape_option(args.shape),
        datatypes=synthetic.parse_shape_datatypes(args.shape),
    )
    model, note = dataset.with_described_inputs(model, options)
    if note:
        print(f"note: {note}", file=sys.stderr)
    arrays = dataset.load_items(model, options)[0]
    inputs = [InferInput(name, array, model.input(name).datatype) for name, array in arrays.items()]
    outputs = [RequestedOutput(spec.name) for spec in model.outputs]
    result = _send(client, model.name, inputs, outputs, args)
    print(f"{model.name}: {len(inputs)} input(s) sent, {len(result.outputs)} output(s) received")
    for name in result.output_names:
        array = result.as_numpy(name)
        meta = result.output(name)
        head = np.asarray(array).reshape(-1)[:8].tolist() if array is not None else "(in shared memory)"
        print(f"  {name}: {meta.datatype} shape={meta.shape} first={head}")
