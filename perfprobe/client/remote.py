"""``RemoteModel``: a served model that behaves like a local function on numpy arrays."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import numpy as np

from perfprobe.client import datatypes
from perfprobe.client.base import InferenceClient, RequestOptions
from perfprobe.client.factory import make_client
from perfprobe.client.model import ModelDescription
from perfprobe.client.tensors import InferInput, RequestedOutput

_SCHEMES = {"http": ("http", False), "https": ("http", True), "grpc": ("grpc", False), "grpcs": ("grpc", True)}


def parse_model_url(url: str) -> tuple[str, str, str, bool, str]:
    """Split ``scheme://host:port/model[/versions/N]`` into protocol, address, model, tls, version."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"model URL must start with http://, https://, grpc:// or grpcs://, got {url!r}")
    protocol, tls = _SCHEMES[parts.scheme]
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        raise ValueError(f"model URL {url!r} names no model (expected {parts.scheme}://host:port/MODEL)")
    version = ""
    if len(segments) == 3 and segments[1] == "versions":
        version = segments[2]
    elif len(segments) != 1:
        raise ValueError(f"model URL {url!r}: path must be /MODEL or /MODEL/versions/N")
    return protocol, parts.netloc, segments[0], tls, version


class RemoteModel:
    """Call a served model with numpy arrays; get its outputs back as a dict of arrays.

    Metadata and configuration are read once. Inputs are cast to the model's datatypes;
    for a batching model an input without the batch dimension gets one added, and it is
    removed again from the outputs, so ``model(image)`` and ``model(batch)`` both work.
    """

    def __init__(self, url: str, *, client: InferenceClient | None = None, **client_options: Any) -> None:
        protocol, address, model_name, tls, version = parse_model_url(url)
        if client is None:
            options = dict(client_options)
            if tls:
                options.setdefault("ssl", True)
            client = make_client(protocol, address, **options)
        self.client = client
        self.model_version = version
        self.description: ModelDescription = client.describe_model(model_name, version)
        self.name = model_name

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.description.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec.name for spec in self.description.outputs]

    def _arrange(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        names = self.input_names
        if len(args) > len(names):
            raise TypeError(f"{self.name} takes {len(names)} inputs ({names}), got {len(args)} positional")
        given = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"{self.name} has no input {key!r}; inputs: {names}")
            if key in given:
                raise TypeError(f"input {key!r} given twice")
            given[key] = value
        missing = [s.name for s in self.description.inputs if s.name not in given and not s.optional]
        if missing:
            raise TypeError(f"{self.name} is missing inputs {missing}")
        return given

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        given = self._arrange(args, kwargs)
        added_batch = False
        inputs: list[InferInput] = []
        for spec in self.description.inputs:
            if spec.name not in given:
                continue
            array = np.asarray(given[spec.name])
            if self.description.batching and array.ndim == len(spec.shape):
                array = array[np.newaxis, ...]
                added_batch = True
            wire = datatypes.to_wire_array(array, spec.datatype)
            inputs.append(InferInput(spec.name, wire, spec.datatype, shape=list(array.shape)))
        outputs = [RequestedOutput(spec.name) for spec in self.description.outputs]
        result = self.client.infer(self.name, inputs, outputs, RequestOptions(model_version=self.model_version))
        arrays = {}
        for name in result.output_names:
            array = result.as_numpy(name)
            arrays[name] = array[0] if added_batch and array is not None else array
        return arrays

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RemoteModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteModel({self.name!r} over {self.client.protocol}, inputs={self.input_names})"
