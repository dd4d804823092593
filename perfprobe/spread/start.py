"""Start a run's load processes, on this machine or on a Ray cluster, as one ``LoadGroup``."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from collections.abc import Callable, Iterator
from typing import Any

from perfprobe.client import InferenceClient
from perfprobe.client.tls import TlsPems
from perfprobe.errors import UsageError
from perfprobe.load.runtime import usable_cores
from perfprobe.spread.group import GroupSettings, LoadGroup, running_group, split_count
from perfprobe.spread.member import MemberModel, MemberSpec
from perfprobe.transport import transport_for


def member_specs(models: list[MemberModel], count: int) -> list[MemberSpec]:
    """One spec per load process: every model's load, each with the process's share of its requests in flight."""
    from perfprobe.shm.system import run_token

    token = run_token()
    first = models[0].load
    greenlets = transport_for(first.protocol).needs_greenlets(first.mode, first.worker_kind)
    pems = TlsPems.read(first.tls) if first.tls is not None else None  # read once, carried to every process
    return [
        MemberSpec(index, [_model_share(model, index, count) for model in models], f"{token}_p{index}", greenlets, pems)
        for index in range(count)
    ]


def _model_share(model: MemberModel, index: int, count: int) -> MemberModel:
    """A model's load in process ``index``: room for its share in flight; a stateful model's ids of its own."""
    load = dataclasses.replace(model.load, max_inflight=-(-model.load.max_inflight // count), tls=None)
    if load.sequences is not None:
        live = max(1, split_count(load.sequences.live, count)[index])  # at least one live sequence each
        load = dataclasses.replace(load, sequences=load.sequences.share(index, count, live))
    return dataclasses.replace(model, load=load)


@contextlib.contextmanager
def spread_load(
    models: list[MemberModel],
    control: InferenceClient,
    on_problem: Callable[[str], None],
    processes: int | None,
    cluster: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    settings: GroupSettings | None = None,
) -> Iterator[LoadGroup]:
    """``processes`` load processes (``None``: one per usable core, or per cluster CPU) as one group.

    ``models``: the run's models in order, each with its whole load (one model, or several at once).
    """
    first = models[0].load
    shared_memory = first.shared_memory
    # a call waits for what a request may take, and a margin for a busy machine; never for ever
    settings = settings or GroupSettings(call_timeout_s=first.request_timeout_s + 15.0)
    levels = [model.level for model in models]
    if cluster is None:
        from perfprobe.spread.channel import LocalMember

        specs = member_specs(models, processes or usable_cores())
        with running_group(specs, LocalMember, control, shared_memory, on_problem, settings, levels) as group:
            yield group
        return
    from perfprobe.spread.ray_hosts import ray_cluster

    with ray_cluster(cluster, runtime_env) as ray:
        count = processes or ray.default_count()
        ray.place(count)
        specs = member_specs(models, count)
        with running_group(specs, ray.start, control, shared_memory, on_problem, settings, levels) as group:
            _check_shared_memory_hosts(shared_memory, group.hosts)
            yield group


def _check_shared_memory_hosts(shared_memory: str, hosts: list[str]) -> None:
    """Shared memory needs the load on the server's host: refuse a cluster that placed it elsewhere."""
    here = socket.gethostname()
    elsewhere = sorted({host for host in hosts if host != here})
    if shared_memory != "none" and elsewhere:
        raise UsageError(
            f"--shared-memory {shared_memory} needs every load process on the server's host ({here}); "
            f"the cluster placed some on {', '.join(elsewhere)}"
        )
