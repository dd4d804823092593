"""Start a run's load processes, on this machine or on a Ray cluster, as one ``LoadGroup``."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from perfprobe.client import InferenceClient
from perfprobe.client.model import ModelDescription
from perfprobe.errors import UsageError
from perfprobe.load.prepare import LoadSpec
from perfprobe.load.runtime import needs_greenlets, usable_cores
from perfprobe.spread.group import GroupSettings, LoadGroup, running_group
from perfprobe.spread.member import MemberSpec


def member_specs(
    load: LoadSpec, model: ModelDescription, items: list[dict[str, np.ndarray]], count: int
) -> list[MemberSpec]:
    """One spec per load process: the same load, each with its share of the requests in flight."""
    from perfprobe.shm.system import run_token

    token = run_token()
    share = dataclasses.replace(load, max_inflight=-(-load.max_inflight // count))
    greenlets = needs_greenlets(load.protocol, load.mode, load.worker_kind)
    return [
        MemberSpec(index, _sequence_share(share, index, count), model, items, f"{token}_p{index}", greenlets)
        for index in range(count)
    ]


def _sequence_share(load: LoadSpec, index: int, count: int) -> LoadSpec:
    """A stateful model's load in process ``index``: ids of its own, its share of the live sequences (at least one)."""
    if load.sequences is None:
        return load
    from perfprobe.spread.group import split_count

    live = max(1, split_count(load.sequences.live, count)[index])
    return dataclasses.replace(load, sequences=load.sequences.share(index, count, live))


@contextlib.contextmanager
def spread_load(
    load: LoadSpec,
    model: ModelDescription,
    items: list[dict[str, np.ndarray]],
    control: InferenceClient,
    on_problem: Callable[[str], None],
    processes: int | None,
    cluster: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    settings: GroupSettings | None = None,
) -> Iterator[LoadGroup]:
    """``processes`` load processes (``None``: one per usable core, or per cluster CPU) as one group."""
    settings = settings or GroupSettings(call_timeout_s=load.request_timeout_s + 60.0)
    if cluster is None:
        from perfprobe.spread.channel import LocalMember

        specs = member_specs(load, model, items, processes or usable_cores())
        with running_group(specs, LocalMember, control, load.shared_memory, on_problem, settings) as group:
            yield group
        return
    from perfprobe.spread.ray_hosts import ray_cluster

    with ray_cluster(cluster, runtime_env) as ray:
        count = processes or ray.default_count()
        ray.place(count)
        specs = member_specs(load, model, items, count)
        with running_group(specs, ray.start, control, load.shared_memory, on_problem, settings) as group:
            _check_shared_memory_hosts(load.shared_memory, group.hosts)
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
