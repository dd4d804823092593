"""Requests whose tensors travel through shared memory (system or CUDA) instead of the wire.

Inputs: one region per data item, filled once before the load starts, each input at a
page-aligned offset. Outputs: one region per worker, so requests in flight at the same
time never write into the same memory (perf_analyzer lets them share one). Output sizes
come from the model configuration; variable or BYTES outputs need an explicit size.
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np

from perfprobe.client import InferenceClient, InferInput, RequestedOutput, SharedMemoryRef
from perfprobe.client.datatypes import element_size, tensor_bytes, to_wire_array
from perfprobe.client.model import ModelDescription
from perfprobe.errors import UsageError
from perfprobe.load.dataset import options_for
from perfprobe.shm import Regions

PAGE = mmap.PAGESIZE


def _aligned(size: int) -> int:
    return max(PAGE, (size + PAGE - 1) // PAGE * PAGE)


def output_sizes(model: ModelDescription, batch_size: int, fallback: int | None) -> dict[str, int]:
    """Bytes to reserve for each output, from its dims (or ``fallback`` when they are not fixed)."""
    sizes = {}
    for spec in model.outputs:
        fixed = spec.datatype != "BYTES" and not spec.is_variable
        if fixed:
            count = int(np.prod(spec.shape)) if spec.shape else 1
            sizes[spec.name] = count * element_size(spec.datatype) * (batch_size if model.batching else 1)
        elif fallback:
            sizes[spec.name] = fallback
        else:
            raise UsageError(
                f"output {spec.name} has no fixed size (dims {list(spec.shape)}, {spec.datatype}): "
                "give --output-shared-memory-size BYTES"
            )
    return sizes


def build_shm_requests(
    client: InferenceClient,
    control: InferenceClient,
    model: ModelDescription,
    items: list[dict[str, np.ndarray]],
    worker_count: int,
    regions: Regions,
    output_size: int | None,
    batch_size: int,
) -> list[list[Any]]:
    """Per worker, its list of prepared requests (one per data item), all regions registered."""
    item_inputs: list[list[InferInput]] = []
    for index, item in enumerate(items):
        encoded = {}
        for name, array in item.items():
            datatype = model.input(name).datatype
            encoded[name] = (datatype, list(array.shape), bytes(tensor_bytes(to_wire_array(array, datatype), datatype)))
        offsets, total = {}, 0
        for name, (_, _, raw) in encoded.items():
            offsets[name] = total
            total += _aligned(len(raw))
        region = regions.create(max(total, PAGE), f"in{index}_")
        for name, (_, _, raw) in encoded.items():
            region.write(raw, offsets[name])
        regions.register(control, region)
        item_inputs.append(
            [
                InferInput(
                    name,
                    datatype=datatype,
                    shape=shape,
                    shared_memory=SharedMemoryRef(region.name, len(raw), offsets[name]),
                )
                for name, (datatype, shape, raw) in encoded.items()
            ]
        )
    sizes = output_sizes(model, batch_size, output_size)
    per_worker: list[list[Any]] = []
    for worker in range(worker_count):
        offsets, total = {}, 0
        for name, size in sizes.items():
            offsets[name] = total
            total += _aligned(size)
        region = regions.create(max(total, PAGE), f"out{worker}_")
        regions.register(control, region)
        outputs = [
            RequestedOutput(name, shared_memory=SharedMemoryRef(region.name, size, offsets[name]))
            for name, size in sizes.items()
        ]
        options = options_for(model)
        per_worker.append([client.build_request(model.name, inputs, outputs, options) for inputs in item_inputs])
    return per_worker
