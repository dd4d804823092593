"""Transports: one module per protocol or endpoint, found by the name ``-i`` takes.

The built-in ones are imported only when asked for (an HTTP run never imports grpcio). Adding a
transport is one module with a ``Transport`` subclass and one ``register`` call; its client then
serves every command through ``perfprobe.client.make_client`` as well.
"""

from __future__ import annotations

import importlib

from perfprobe.client.factory import register_client
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

_BUILT_IN = {"http": "perfprobe.transport.kserve_http", "grpc": "perfprobe.transport.kserve_grpc"}
_registered: dict[str, Transport] = {}


def register(transport: Transport) -> Transport:
    """Make ``transport`` (and its client) available under its protocol name; returns it."""
    _registered[transport.protocol] = transport
    register_client(transport.protocol, transport.default_url, transport.client)
    return transport


def protocols() -> tuple[str, ...]:
    """Every protocol name a run may ask for."""
    return tuple(dict.fromkeys([*_BUILT_IN, *_registered]))


def transport_for(protocol: str) -> Transport:
    """The transport registered under ``protocol`` (the built-in ones imported on first use)."""
    if protocol not in _registered:
        if protocol not in _BUILT_IN:
            raise ValueError(f"protocol must be one of {', '.join(protocols())}, not {protocol!r}")
        importlib.import_module(_BUILT_IN[protocol])  # registers itself
    return _registered[protocol]


def transports() -> list[Transport]:
    """Every transport a run may ask for, built-in ones first."""
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
    "failed",
    "protocols",
    "register",
    "transport_for",
    "transports",
    "transports_with_mode",
]
