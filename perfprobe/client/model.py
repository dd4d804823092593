"""One typed description of a served model, built from its metadata and configuration.

HTTP returns both as JSON, gRPC as protobuf; both are normalised to the same JSON-shaped
dicts (proto field names) and parsed here once, so nothing downstream cares which
protocol asked.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from perfprobe.client.datatypes import config_to_datatype

# the batch limit of a model whose server takes batches without saying how large (no model configuration)
UNKNOWN_BATCH_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class TensorSpec:
    """An input or output as the model declares it (``shape`` excludes the batch dim)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    format: str = "FORMAT_NONE"
    optional: bool = False
    is_shape_tensor: bool = False
    label_filename: str = ""

    @property
    def is_variable(self) -> bool:
        """True when some dimension is -1 and must be chosen by the caller."""
        return any(dim < 0 for dim in self.shape)


@dataclass(frozen=True)
class DynamicBatching:
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 0
    preserve_ordering: bool = False


@dataclass(frozen=True)
class EnsembleStep:
    model_name: str
    model_version: int
    input_map: dict[str, str]
    output_map: dict[str, str]


@dataclass(frozen=True)
class InstanceGroup:
    kind: str
    count: int
    gpus: tuple[int, ...] = ()


@dataclass(frozen=True)
class ModelDescription:
    """Everything a load generator needs to know about a model before sending to it."""

    name: str
    versions: tuple[str, ...]
    platform: str
    backend: str
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    decoupled: bool = False
    dynamic_batching: DynamicBatching | None = None
    sequence_batching: bool = False
    string_correlation_ids: bool = False  # the sequence batcher's CORRID control is a string
    ensemble_steps: tuple[EnsembleStep, ...] = ()
    instance_groups: tuple[InstanceGroup, ...] = ()
    response_cache: bool = False
    config: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # False: the server has no model-configuration extension; batching is read from the metadata's
    # shapes (a -1 first dimension on every input) and its limit is unknown
    config_known: bool = True

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 0

    @property
    def is_ensemble(self) -> bool:
        return bool(self.ensemble_steps)

    @property
    def config_digest(self) -> str:
        """A short stable hash of the configuration, to tell runs of different configs apart."""
        canonical = json.dumps(self.config, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(f"model {self.name!r} has no input {name!r}; inputs: {[s.name for s in self.inputs]}")

    def output(self, name: str) -> TensorSpec:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(f"model {self.name!r} has no output {name!r}; outputs: {[s.name for s in self.outputs]}")

    def with_inputs(self, inputs: tuple[TensorSpec, ...], batching: bool) -> ModelDescription:
        """The model with inputs the user described (its server lists none); ``batching``: -b > 1 asked."""
        return replace(self, inputs=inputs, max_batch_size=UNKNOWN_BATCH_LIMIT if batching else 0)

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> ModelDescription:
        """A model of a server without the model-configuration extension: what its metadata says.

        The metadata's shapes include the batch dimension; a model whose every input starts with -1
        takes batches (how many at most, it does not say), and its shapes are kept without it.
        """
        inputs = [_metadata_spec(item) for item in metadata.get("inputs") or []]
        outputs = [_metadata_spec(item) for item in metadata.get("outputs") or []]
        batching = bool(inputs) and all(spec.shape[:1] == (-1,) for spec in inputs)
        if batching:
            inputs = [replace(spec, shape=spec.shape[1:]) for spec in inputs]
            outputs = [replace(spec, shape=spec.shape[1:]) if spec.shape[:1] == (-1,) else spec for spec in outputs]
        return cls(
            name=str(metadata.get("name") or ""),
            versions=tuple(str(v) for v in metadata.get("versions") or []),
            platform=str(metadata.get("platform") or ""),
            backend="",
            max_batch_size=UNKNOWN_BATCH_LIMIT if batching else 0,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            config_known=False,
        )

    @classmethod
    def from_dicts(cls, metadata: dict[str, Any], config: dict[str, Any] | None) -> ModelDescription:
        """Parse JSON-shaped metadata and config (proto field names, as Triton's HTTP API returns).

        ``config`` None: the server has no model configuration to give (``from_metadata``).
        """
        if config is None:
            return cls.from_metadata(metadata)
        batching = config.get("max_batch_size", 0)
        batch_sched = config.get("dynamic_batching")
        ensemble = config.get("ensemble_scheduling") or {}
        return cls(
            name=metadata.get("name") or config.get("name", ""),
            versions=tuple(str(v) for v in metadata.get("versions", [])),
            platform=metadata.get("platform") or config.get("platform", ""),
            backend=config.get("backend", ""),
            max_batch_size=int(batching or 0),
            inputs=tuple(_tensor_spec(item) for item in config.get("input", [])),
            outputs=tuple(_tensor_spec(item) for item in config.get("output", [])),
            decoupled=bool((config.get("model_transaction_policy") or {}).get("decoupled", False)),
            dynamic_batching=_dynamic_batching(batch_sched) if batch_sched is not None else None,
            sequence_batching="sequence_batching" in config and config["sequence_batching"] is not None,
            string_correlation_ids=_string_correlation_ids(config.get("sequence_batching") or {}),
            ensemble_steps=tuple(_ensemble_step(step) for step in ensemble.get("step", [])),
            instance_groups=tuple(
                InstanceGroup(
                    kind=group.get("kind", "KIND_AUTO"),
                    count=int(group.get("count", 1)),
                    gpus=tuple(int(g) for g in group.get("gpus", [])),
                )
                for group in config.get("instance_group", [])
            ),
            response_cache=bool((config.get("response_cache") or {}).get("enable", False)),
            config=config,
        )


def _metadata_spec(item: dict[str, Any]) -> TensorSpec:
    return TensorSpec(
        name=str(item["name"]),
        datatype=str(item.get("datatype", "")),
        shape=tuple(int(d) for d in item.get("shape", [])),
    )


def _tensor_spec(item: dict[str, Any]) -> TensorSpec:
    return TensorSpec(
        name=item["name"],
        datatype=config_to_datatype(item.get("data_type", "TYPE_INVALID")),
        shape=tuple(int(d) for d in item.get("dims", [])),
        format=item.get("format", "FORMAT_NONE"),
        optional=bool(item.get("optional", False)),
        is_shape_tensor=bool(item.get("is_shape_tensor", False)),
        label_filename=item.get("label_filename", ""),
    )


def _dynamic_batching(item: dict[str, Any]) -> DynamicBatching:
    return DynamicBatching(
        preferred_batch_sizes=tuple(int(b) for b in item.get("preferred_batch_size", [])),
        max_queue_delay_us=int(item.get("max_queue_delay_microseconds", 0)),
        preserve_ordering=bool(item.get("preserve_ordering", False)),
    )


def _ensemble_step(step: dict[str, Any]) -> EnsembleStep:
    return EnsembleStep(
        model_name=step["model_name"],
        model_version=int(step.get("model_version", -1)),
        input_map=dict(step.get("input_map", {})),
        output_map=dict(step.get("output_map", {})),
    )


def _string_correlation_ids(sequence_batching: dict[str, Any]) -> bool:
    """Whether the model declares its correlation id a string (a CORRID control of TYPE_STRING)."""
    for control_input in sequence_batching.get("control_input", []):
        for control in control_input.get("control", []):
            if control.get("kind") == "CONTROL_SEQUENCE_CORRID" and control.get("data_type") == "TYPE_STRING":
                return True
    return False
