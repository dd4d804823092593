"""Load processes on a Ray cluster: a placement group spreads one actor per process over the nodes.

Each actor starts the same load process as ``--processes`` does on one machine (a spawned
interpreter on the actor's node, its own gevent patching, its own pipe) and forwards the
coordinator's calls to it, so a load process behaves the same on a laptop and on a cluster.
Ray is an optional extra (``perfprobe[cluster]``), imported only here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from perfprobe.errors import ClusterUnavailable, LoadProcessLost, PerfprobeError
from perfprobe.spread.member import Hello, MemberSpec

INSTALL_HINT = "pip install 'perfprobe[cluster]'"
# how long an actor waits for its load process's answer; the coordinator's own, shorter wait (its
# ``ray.get`` timeout) is what declares a process lost
ACTOR_WAIT_LIMIT_S = 3600.0


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable(f"--cluster needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


class MemberHost:
    """A Ray actor holding one load process on its node (made a remote class in ``RayCluster``)."""

    def __init__(self) -> None:
        self.member: Any = None

    def start(self, spec: MemberSpec) -> tuple[str, Any]:
        import dataclasses

        import ray

        from perfprobe.spread.channel import LocalMember

        try:
            self.member = LocalMember(spec)
            hello = self.member.started()
            return "ok", dataclasses.replace(hello, node=ray.get_runtime_context().get_node_id())
        except PerfprobeError as exc:
            return "error", type(exc)(str(exc))

    def call(self, method: str, args: tuple[Any, ...], timeout_s: float) -> tuple[str, Any]:
        try:
            self.member.submit(method, *args)
            return "ok", self.member.result(timeout_s)
        except PerfprobeError as exc:
            return "error", type(exc)(str(exc))

    def close(self, timeout_s: float) -> list[str]:
        return self.member.close(timeout_s) if self.member is not None else []


class RayMember:
    """The coordinator's end of one load process hosted by a Ray actor."""

    def __init__(self, ray: Any, actor: Any, spec: MemberSpec, start_timeout_s: float) -> None:
        self.ray = ray
        self.actor = actor
        self.index = spec.index
        self.region_token = spec.region_token
        self.lost: str | None = None
        self._start = actor.start.remote(spec)
        self._start_timeout_s = start_timeout_s
        self._pending: Any = None

    def started(self) -> Hello:
        return self._get(self._start, self._start_timeout_s)

    def submit(self, method: str, *args: Any) -> None:
        self._pending = self.actor.call.remote(method, args, ACTOR_WAIT_LIMIT_S)

    def result(self, timeout_s: float) -> Any:
        return self._get(self._pending, timeout_s)

    def _get(self, ref: Any, timeout_s: float) -> Any:
        ray = self.ray
        try:
            status, value = ray.get(ref, timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:
            self.lost = f"load process {self.index} (Ray actor) did not answer in {timeout_s:g} s"
            raise LoadProcessLost(self.lost) from None
        except ray.exceptions.RayError as exc:  # the actor, its worker or its node died
            self.lost = f"load process {self.index} (Ray actor) was lost: {type(exc).__name__}"
            raise LoadProcessLost(self.lost) from None
        if status == "error":
            if isinstance(value, LoadProcessLost):
                self.lost = str(value)
            raise value
        return value

    def close(self, timeout_s: float) -> list[str]:
        problems: list[str] = []
        if self.lost is None:
            try:
                problems = list(self.ray.get(self.actor.close.remote(timeout_s), timeout=timeout_s + 5))
            except Exception as exc:  # lost while closing: its node ends the load process with it
                self.lost = f"load process {self.index} (Ray actor) was lost while closing: {type(exc).__name__}"
        with contextlib.suppress(Exception):
            self.ray.kill(self.actor)
        return problems


class RayCluster:
    """A connection to the cluster and a placement group of one CPU per load process."""

    def __init__(self, address: str, runtime_env: dict[str, Any] | None, start_timeout_s: float) -> None:
        self.ray = _ray()
        self.address = os.environ.get("RAY_ADDRESS", "auto") if address == "auto" else address
        self.runtime_env = runtime_env
        self.start_timeout_s = start_timeout_s
        self.group: Any = None
        self._connected_here = False
        self._host_class: Any = None

    def connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return  # a library caller connected already: use that connection and leave it open
        try:
            ray.init(
                address=self.address,
                runtime_env=self.runtime_env,
                log_to_driver=False,
                logging_level="ERROR",
                configure_logging=False,
            )
        except Exception as exc:  # no cluster there, wrong address, version mismatch
            raise ClusterUnavailable(f"--cluster {self.address}: cannot connect to Ray ({exc})") from None
        self._connected_here = True

    def default_count(self) -> int:
        """One load process per CPU the cluster has (``--processes auto`` with ``--cluster``)."""
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def place(self, count: int) -> None:
        """Reserve one CPU per load process, spread over the nodes; refuse what the cluster cannot hold."""
        from ray.util.placement_group import placement_group

        self.group = placement_group([{"CPU": 1}] * count, strategy="SPREAD")
        ready, _ = self.ray.wait([self.group.ready()], timeout=self.start_timeout_s)
        if not ready:
            cpus = self.ray.cluster_resources().get("CPU", 0)
            raise ClusterUnavailable(
                f"the cluster cannot place {count} load processes (one CPU each; it has {cpus:g} CPUs)"
            )

    def start(self, spec: MemberSpec) -> RayMember:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        if self._host_class is None:
            self._host_class = self.ray.remote(MemberHost)
        strategy = PlacementGroupSchedulingStrategy(placement_group=self.group, placement_group_bundle_index=spec.index)
        actor = self._host_class.options(num_cpus=1, max_restarts=0, scheduling_strategy=strategy).remote()
        return RayMember(self.ray, actor, spec, self.start_timeout_s)

    def close(self) -> None:
        ray = self.ray
        if self.group is not None:
            from ray.util.placement_group import remove_placement_group

            with contextlib.suppress(Exception):
                remove_placement_group(self.group)
            self.group = None
        if self._connected_here:
            with contextlib.suppress(Exception):
                ray.shutdown()
            self._connected_here = False


@contextlib.contextmanager
def ray_cluster(
    address: str, runtime_env: dict[str, Any] | None, start_timeout_s: float = 120.0
) -> Iterator[RayCluster]:
    """The cluster at ``address`` (``auto``: ``RAY_ADDRESS``), disconnected and its reservation freed after."""
    cluster = RayCluster(address, runtime_env, start_timeout_s)
    try:
        cluster.connect()
        yield cluster
    finally:
        cluster.close()
