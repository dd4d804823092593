"""What a KServe v2 server offers beyond the core protocol, learned once before a run.

The core protocol (health, metadata, inference) is all a KServe v2 server must have; Triton adds
extensions (model configuration, statistics, shared memory, binary tensors, ...). A server lists
its extensions in its metadata, but not every server lists what it has (KServe's ModelServer
takes binary tensors without saying so, and names its repository extension its own way), so
the list is read first and probed where it is silent. A run then uses only what is there, and
a figure an absent extension would have measured is left empty with ``missing()``'s reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from perfprobe.client.errors import NOT_SUPPORTED, InferenceServerError

# the extensions perfprobe uses, by the name Triton lists them under, with what a reader calls them
TITLES = {
    "model_configuration": "model-configuration",
    "statistics": "statistics",
    "system_shared_memory": "system shared-memory",
    "cuda_shared_memory": "CUDA shared-memory",
    "binary_tensor_data": "binary tensor data",
    "sequence": "sequence",
    "model_repository": "model-repository",
    "trace": "trace",
    "logging": "logging",
}


def absent_call(exc: InferenceServerError) -> bool:
    """Whether a failed call means the server lacks the endpoint (not that the request was bad).

    Only meaningful for a call about a model the server is known to have: a route the server
    does not serve answers 404 (HTTP) or UNIMPLEMENTED (gRPC).
    """
    return exc.failure == NOT_SUPPORTED or exc.http_status in (404, 405) or exc.grpc_code == "UNIMPLEMENTED"


def _listed_name(listed: str) -> str:
    """An extension's name as listed, without arguments or suffixes (``model_repository(unload_dependents)``,
    KServe's ``model_repository_extension``)."""
    name = listed.split("(", 1)[0].strip().lower()
    return name.removesuffix("_extension")


@dataclass(frozen=True)
class ServerAbilities:
    """A server's name, version and the extensions it was found to have (listed or probed)."""

    name: str = ""
    version: str = ""
    listed: tuple[str, ...] = ()  # what its metadata said, verbatim
    extensions: frozenset[str] = frozenset()
    probed: dict[str, bool] = field(default_factory=dict)  # extension -> what a probe found

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> ServerAbilities:
        listed = tuple(str(item) for item in (metadata.get("extensions") or []))
        return cls(
            str(metadata.get("name") or ""),
            str(metadata.get("version") or ""),
            listed,
            frozenset(_listed_name(item) for item in listed),
        )

    def has(self, extension: str) -> bool:
        return extension in self.extensions

    def with_probe(self, extension: str, found: bool) -> ServerAbilities:
        extensions = self.extensions | {extension} if found else self.extensions
        return ServerAbilities(self.name, self.version, self.listed, extensions, {**self.probed, extension: found})

    @property
    def title(self) -> str:
        return " ".join(part for part in (self.name or "the server", self.version) if part)

    def missing(self, extension: str) -> str:
        """Why something that needs ``extension`` is not there, in one phrase."""
        return f"the server ({self.title}) has no {TITLES.get(extension, extension)} extension"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "extensions": list(self.listed),
            "found": sorted(self.extensions),
            "probed": dict(sorted(self.probed.items())),
        }


def probe_statistics(client: Any, model_name: str) -> bool:
    """Whether the server answers the statistics extension for a model it has."""
    try:
        stats = client.inference_statistics(model_name)
    except InferenceServerError as exc:
        if absent_call(exc):
            return False
        raise
    return isinstance(stats, dict) and "model_stats" in stats


def learn(client: Any, model_name: str, config_found: bool) -> ServerAbilities:
    """The server's abilities: its metadata's list, with what it left out probed on ``model_name``.

    ``config_found``: whether describing the model found its configuration (the probe for that
    extension, made already).
    """
    abilities = ServerAbilities.from_metadata(client.server_metadata())
    if not abilities.has("model_configuration"):
        abilities = abilities.with_probe("model_configuration", config_found)
    if not abilities.has("statistics"):
        abilities = abilities.with_probe("statistics", probe_statistics(client, model_name))
    return abilities
