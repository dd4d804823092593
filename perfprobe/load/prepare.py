"""A load ready to run: its client, send path, requests (on the wire or in shared memory).

Built the same way in the run's own process and in each load process of ``--processes``, from
a ``LoadSpec`` (plain data, so it travels to another process or machine) plus the model's
description and its data items.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from perfprobe.client import InferenceClient, make_client
from perfprobe.client.compression import compression_options
from perfprobe.client.model import ModelDescription
from perfprobe.client.tls import TlsFiles, client_options
from perfprobe.load.engine import EngineSettings, SequencePlan
from perfprobe.load.open_files import ensure_open_files
from perfprobe.load.sendpath import SendPath, build_send_path
from perfprobe.load.sequences import SequenceSettings
from perfprobe.load.windowed import LocalLoad
from perfprobe.shm import Regions
from perfprobe.transport import transport_for


@dataclass(frozen=True)
class LoadSpec:
    """How one process loads the server: where, how it sends, through what memory, how many at most."""

    protocol: str
    url: str
    headers: dict[str, str]
    tls: TlsFiles | None  # TLS files (TLS on); None: the URL's scheme decides
    compression: str | None  # gzip or deflate: requests compressed (over HTTP, answers asked compressed)
    parameters: dict[str, bool | int | float | str]  # custom parameters every request carries
    json_inputs: bool  # HTTP: input tensors as JSON values in the request's header, not binary after it
    json_outputs: bool  # HTTP: output tensors asked for as JSON values likewise
    request_timeout_s: float
    mode: str
    worker_kind: str
    grpc_transport: str
    decode_outputs: bool
    shared_memory: str  # none | system | cuda
    output_shm_size: int | None
    cuda_device: int
    batch_size: int
    max_inflight: int
    engine: EngineSettings
    sequences: SequenceSettings | None = None  # a stateful model: requests are steps of live sequences
    send_items: tuple[int, ...] = ()  # a trace: the data item of each of its sends
    endpoint: str = "infer"  # the transport's endpoint: infer, or the generate extension's
    tokenizer: str | None = None  # counts a generated answer's tokens


@dataclass
class PreparedLoad:
    """Everything a load level needs that is built once per run (or per load process)."""

    spec: LoadSpec
    send_path: SendPath
    requests: list[Any]
    per_worker: list[list[Any]] | None
    with_parameters: Callable[[Any, dict[str, Any]], Any]

    def make_load(self) -> LocalLoad:
        """A fresh engine and recorder for one level."""
        path = self.send_path
        settings = self.spec.sequences
        sequences = SequencePlan(settings, self.with_parameters) if settings is not None else None
        spec = self.spec
        return LocalLoad.build(
            path.runtime, path.sender_factory, self.requests, spec.engine, self.per_worker, sequences, spec.send_items
        )


@contextlib.contextmanager
def prepared_load(
    spec: LoadSpec,
    control: InferenceClient,
    model: ModelDescription,
    items: list[dict[str, np.ndarray]],
    on_problem: Callable[[str], None],
    region_token: str | None = None,
) -> Iterator[PreparedLoad]:
    """The load's client, send path and requests; everything released on the way out.

    ``control`` registers the shared-memory regions; ``region_token`` names them, so whoever
    started this process can find and release them should it die (``perfprobe.spread``).
    """
    from perfprobe.load import dataset

    # system shared memory: a region per data item, and one per worker for its outputs, each an open file
    regions = len(items) + spec.max_inflight if spec.shared_memory == "system" else 0
    ensure_open_files(spec.max_inflight, regions)
    load_client = make_client(
        spec.protocol,
        spec.url,
        concurrency=spec.max_inflight,
        headers=spec.headers,
        timeout_s=spec.request_timeout_s,
        **client_options(spec.tls),
        **compression_options(spec.protocol, spec.compression),
    )
    send_path: SendPath | None = None
    try:
        send_path = build_send_path(
            load_client, spec.mode, spec.worker_kind, spec.request_timeout_s, spec.decode_outputs, spec.grpc_transport,
            spec.endpoint, spec.tokenizer,
        )  # fmt: skip
        transport = transport_for(spec.protocol, spec.endpoint)

        def with_parameters(request: Any, parameters: dict[str, Any]) -> Any:
            return transport.with_parameters(load_client, request, parameters)

        with _regions(spec, on_problem, region_token) as regions:
            if regions is not None:
                from perfprobe.load.shm_requests import build_shm_requests

                requests: list[Any] = []
                per_worker = build_shm_requests(
                    load_client,
                    control,
                    model,
                    items,
                    spec.max_inflight,
                    regions,
                    spec.output_shm_size,
                    spec.batch_size,
                )
            else:
                requests = dataset.build_requests(load_client, model, items, json_inputs=spec.json_inputs,
                                                  json_outputs=spec.json_outputs, endpoint=spec.endpoint)  # fmt: skip
                per_worker = None
            if spec.parameters:  # added once here, so no send pays for them
                requests, per_worker = _with_parameters(with_parameters, spec.parameters, requests, per_worker)
            yield PreparedLoad(spec, send_path, requests, per_worker, with_parameters)
    finally:
        if send_path is not None:
            send_path.runtime.close()
        load_client.close()


def _with_parameters(
    add: Callable[[Any, dict[str, Any]], Any],
    parameters: dict[str, bool | int | float | str],
    requests: list[Any],
    per_worker: list[list[Any]] | None,
) -> tuple[list[Any], list[list[Any]] | None]:
    """The same requests, each carrying ``parameters`` (a sequence's own are added on top, per send)."""
    carrying = [add(request, parameters) for request in requests]
    if per_worker is None:
        return carrying, None
    return carrying, [[add(request, parameters) for request in own] for own in per_worker]


@contextlib.contextmanager
def _regions(spec: LoadSpec, on_problem: Callable[[str], None], token: str | None) -> Iterator[Regions | None]:
    """The load's shared-memory regions, released on every way out (signals held back meanwhile)."""
    if spec.shared_memory not in ("system", "cuda"):
        yield None
        return
    from perfprobe.shm import region_set

    regions = region_set(spec.shared_memory, "sweep", spec.cuda_device, token)
    try:
        yield regions
    finally:
        for problem in regions.close():  # only our regions, by name; never "unregister all"
            on_problem(f"warning: {problem}")
