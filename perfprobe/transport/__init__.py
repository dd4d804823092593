"""Transports: one module per protocol or endpoint, found by the name ``-i`` takes.

The built-in ones are imported only when asked for (an HTTP run never imports grpcio). Adding a
transport is one module with a ``Transport`` subclass and one ``register`` call; its client then
serves every command through ``perfprobe.client.make_client`` as well.
"""

from __future__ import annotations

import importlib

from perfprobe.client.factory import register_client
from perfprobe.errors import UsageError
from perfprobe.transport.base import (
    MODES,
    BlockingSender,
    Outcome,
    Response,
    Sender,
    SendPlan,
    SendSettings,
    TensorFormats,
    Transport,
    failed,
)

INFER = "infer"
_BUILT_IN = {
    ("http", INFER): "perfprobe.transport.kserve_http",
    ("grpc", INFER): "perfprobe.transport.kserve_grpc",
    ("http", "generate"): "perfprobe.transport.kserve_generate",
    ("http", "generate_stream"): "perfprobe.transport.kserve_generate",
}
_registered: dict[tuple[str, str], Transport] = {}


def register(transport: Transport) -> Transport:
    """Make ``transport`` available under its protocol and endpoint (an ``infer`` one's client too); returns it."""
    _registered[(transport.protocol, transport.endpoint)] = transport
    if transport.endpoint == INFER:
        register_client(transport.protocol, transport.default_url, transport.client)
    return transport


def protocols() -> tuple[str, ...]:
    """Every protocol name a run may ask for."""
    return tuple(dict.fromkeys(protocol for protocol, _ in [*_BUILT_IN, *_registered]))


def endpoints(protocol: str | None = None) -> tuple[str, ...]:
    """The endpoints a run may ask for (of ``protocol``, or of any), ``infer`` first."""
    return tuple(
        dict.fromkeys(end for proto, end in [*_BUILT_IN, *_registered] if protocol is None or proto == protocol)
    )


def transport_for(protocol: str, endpoint: str = INFER) -> Transport:
    """The transport registered under ``protocol`` and ``endpoint`` (the built-in ones imported on first use)."""
    key = (protocol, endpoint)
    if key not in _registered:
        if protocol not in protocols():
            raise ValueError(f"protocol must be one of {', '.join(protocols())}, not {protocol!r}")
        if key not in _BUILT_IN:
            offered = ", ".join(endpoints(protocol))
            others = [proto for proto, end in [*_BUILT_IN, *_registered] if end == endpoint]
            hint = f"; it needs -i {others[0]}" if others else ""
            raise UsageError(f"--endpoint {endpoint}: {protocol} offers {offered}{hint}")
        importlib.import_module(_BUILT_IN[key])  # registers itself
    return _registered[key]


def transports() -> list[Transport]:
    """Every protocol's own transport (its ``infer`` endpoint), built-in ones first."""
    return [transport_for(name) for name in protocols()]


def connections() -> tuple[str, ...]:
    """Every choice of what carries a load, over all transports that have one (``--grpc-transport``)."""
    return tuple(dict.fromkeys(choice for transport in transports() for choice in transport.connections))


def transports_with_mode(mode: str) -> list[Transport]:
    """The transports that offer ``mode`` (for a hint when the one asked for does not)."""
    return [transport for transport in transports() if mode in transport.modes]


__all__ = [
    "MODES",
    "BlockingSender",
    "Outcome",
    "Response",
    "SendPlan",
    "SendSettings",
    "Sender",
    "TensorFormats",
    "Transport",
    "connections",
    "endpoints",
    "failed",
    "protocols",
    "register",
    "transport_for",
    "transports",
    "transports_with_mode",
]
