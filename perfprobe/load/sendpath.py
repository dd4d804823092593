"""How a load run sends: the worker runtime and a factory of per-worker senders, for one client.

The transport of the client's protocol decides (``perfprobe.transport``): which worker kind it
runs on for the mode and kind asked for, and what each worker sends with. This module only
makes that runtime and hands each worker its sender; it never asks a protocol's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from perfprobe.client import InferenceClient
from perfprobe.client.model import ModelDescription
from perfprobe.load.runtime import Runtime, make_runtime
from perfprobe.transport import SendSettings, transport_for
from perfprobe.transport.base import Sender


@dataclass
class SendPath:
    """What a load run sends with: a worker runtime and a factory of per-worker senders."""

    runtime: Runtime
    sender_factory: Callable[[], Sender]
    notes: list[str] = field(default_factory=list)


def check_combination(protocol: str, mode: str, model: ModelDescription, endpoint: str = "infer") -> None:
    """Refuse combinations that cannot work, with the reason."""
    transport = transport_for(protocol, endpoint)
    transport.check_mode(mode, model.decoupled)
    transport.check_model(model)


def build_send_path(
    client: InferenceClient,
    mode: str,
    worker_kind: str,
    request_timeout_s: float,
    decode_outputs: bool = False,
    connection: str = "h2",
    endpoint: str = "infer",
    tokenizer: str | None = None,
) -> SendPath:
    """The runtime and senders for ``mode`` on ``client`` (whose pool must fit the workers)."""
    settings = SendSettings(mode, worker_kind, request_timeout_s, decode_outputs, connection, tokenizer)
    plan = transport_for(client.protocol, endpoint).send_plan(client, settings)
    runtime = make_runtime(plan.worker_kind)
    make_sender = plan.make_sender
    return SendPath(runtime, lambda: make_sender(runtime), plan.notes)
