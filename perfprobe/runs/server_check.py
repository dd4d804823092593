"""Before any load: what the server offers, checked against what the run asks of it.

A KServe v2 server need not have Triton's extensions. The run learns which it has
(``perfprobe.client.abilities``), refuses at once what cannot work without them (shared memory),
and over HTTP, where a server that does not list binary tensor data may still take it, one
request decides: binary when the server takes it, JSON values when it refuses binary.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from perfprobe.client import InferenceClient
from perfprobe.client.abilities import ServerAbilities
from perfprobe.client.errors import InferenceServerError
from perfprobe.client.model import ModelDescription
from perfprobe.errors import UsageError
from perfprobe.load.prepare import LoadSpec
from perfprobe.transport import transport_for

MEMORY_EXTENSIONS = {"system": "system_shared_memory", "cuda": "cuda_shared_memory"}


def memory_missing(kind: str, abilities: ServerAbilities) -> str:
    """Why the server cannot take tensors in ``kind`` shared memory ("" when it can, or for the wire)."""
    extension = MEMORY_EXTENSIONS.get(kind)
    return abilities.missing(extension) if extension is not None and not abilities.has(extension) else ""


def check_shared_memory(kind: str, abilities: ServerAbilities) -> None:
    """Shared memory the server cannot register: refused before anything is created."""
    missing = memory_missing(kind, abilities)
    if missing:
        raise UsageError(f"--shared-memory {kind}: {missing}; measure over the wire instead")


def check_streaming(
    spec: LoadSpec, control: InferenceClient, model: ModelDescription, items: list[Any], abilities: ServerAbilities
) -> int:
    """A streaming mode on a server other than Triton: one request on a stream first, so a server without
    Triton's streaming RPC (``ModelStreamInfer``) is refused in one line, not measured as all errors.

    Returns the requests the server served (1, or 0 when no check was needed).
    """
    streams = spec.endpoint == "infer" and spec.mode in transport_for(spec.protocol).streaming_modes
    if not streams or abilities.name == "triton" or not items:
        return 0
    import threading

    from perfprobe.load.dataset import build_requests

    answered = threading.Event()
    failure: list[BaseException] = []

    def on_answer(_: Any, error: BaseException | None) -> None:
        if error is not None:
            failure.append(error)
        answered.set()

    stream = control.start_stream(on_answer)
    try:
        stream.send(build_requests(control, model, items[:1])[0])
        answered.wait(spec.request_timeout_s)
    finally:
        stream.close(timeout_s=1.0)
    if not answered.is_set():
        return 0  # no answer in time: the load will say what becomes of its requests
    error = failure[0] if failure else None
    if isinstance(error, InferenceServerError) and error.grpc_code == "UNIMPLEMENTED":
        raise UsageError(
            f"--mode {spec.mode}: the server ({abilities.title}) has no gRPC streaming (ModelStreamInfer); "
            "use --mode sync or async"
        )
    if isinstance(error, InferenceServerError):
        raise InferenceServerError(
            f"--mode {spec.mode}: the first request on a gRPC stream failed ({error.status}: {error.message})",
            grpc_code=error.grpc_code,
            failure=error.failure,
        )
    if error is not None:
        raise error
    return 1


@dataclass(frozen=True)
class TensorFormatCheck:
    """What the first request found: the spec to load with, what to tell the user, how many requests it sent.

    ``served``: the requests of the check the server answered (a refused one is not served), so a
    server's own count of a run is the windows', the warm-ups' and these.
    """

    spec: LoadSpec
    note: str
    served: int


def check_tensor_format(
    spec: LoadSpec, control: InferenceClient, model: ModelDescription, items: list[Any], abilities: ServerAbilities
) -> TensorFormatCheck:
    """Binary or JSON tensors, decided by one request when the server does not list binary tensor data.

    A server that refuses the binary request and takes the same tensors as JSON values gets JSON
    for the whole run, and the run says so. A request refused both ways fails the run with the
    server's reason (before any load, so no level is measured on requests that all fail).
    """
    decided = (
        not transport_for(spec.protocol, spec.endpoint).json_tensors
        or abilities.has("binary_tensor_data")
        or (spec.json_inputs and spec.json_outputs)
        or model.sequence_batching  # (Triton's, which lists binary tensor data)
        or spec.shared_memory != "none"
        or not items
    )
    if decided:
        return TensorFormatCheck(spec, "", 0)
    from perfprobe.load.dataset import build_requests

    first = build_requests(control, model, items[:1], json_inputs=spec.json_inputs, json_outputs=spec.json_outputs)
    try:
        control.send(first[0])
        return TensorFormatCheck(spec, "", 1)
    except InferenceServerError as exc:
        if exc.http_status is None or not 400 <= exc.http_status < 500:
            raise
        refusal = exc.message
    as_json = build_requests(control, model, items[:1], json_inputs=True, json_outputs=True)
    control.send(as_json[0])  # refused too: the server's reason ends the run
    note = f"{model.name}: tensors sent as JSON values: the server refused binary tensor data ({refusal})"
    return TensorFormatCheck(replace(spec, json_inputs=True, json_outputs=True), note, 1)
