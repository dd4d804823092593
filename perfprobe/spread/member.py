"""One load process: its own connections, workers, recorder and shared-memory regions.

Everything it is asked arrives as a method call from the coordinator (through a pipe, or a Ray
actor that forwards to the pipe); everything it answers is plain, picklable data.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perfprobe.client import make_client
from perfprobe.client.model import ModelDescription
from perfprobe.load.liveness import ServerWatch
from perfprobe.load.prepare import LoadSpec, PreparedLoad, prepared_load
from perfprobe.load.schedule import ScheduleSpec
from perfprobe.load.windowed import ClosedWindow, LoadHealth, LocalLoad, ProcessShare


@dataclass
class MemberSpec:
    """What a load process needs, all of it picklable: the coordinator read the model and data once."""

    index: int
    load: LoadSpec
    model: ModelDescription
    items: list[dict[str, np.ndarray]]
    region_token: str  # names this process's shared-memory regions: the coordinator can release them
    greenlets: bool  # the process patches for gevent first thing


@dataclass
class Hello:
    """A started load process introduces itself."""

    index: int
    host: str
    pid: int
    worker_kind: str
    notes: list[str] = field(default_factory=list)
    node: str = ""  # the Ray node it runs on (on a cluster)


class LoadProcess:
    """The engine of one load process, driven window by window by the coordinator."""

    def __init__(self, spec: MemberSpec) -> None:
        self.spec = spec
        self.problems: list[str] = []
        self._stack = contextlib.ExitStack()
        try:
            load = spec.load
            self.control = self._stack.enter_context(
                make_client(load.protocol, load.url, headers=load.headers, timeout_s=load.request_timeout_s)
            )
            self.prepared: PreparedLoad = self._stack.enter_context(
                prepared_load(load, self.control, spec.model, spec.items, self.problems.append, spec.region_token)
            )
        except BaseException:
            self._stack.close()
            raise
        self.watch = ServerWatch(self.control)
        self.load: LocalLoad | None = None
        self.host = socket.gethostname()
        self.pid = os.getpid()

    def hello(self) -> Hello:
        path = self.prepared.send_path
        return Hello(self.spec.index, self.host, self.pid, path.runtime.kind, list(path.notes))

    def start_closed(self, concurrency: int) -> None:
        self.load = self.prepared.make_load()
        self.load.start_closed(concurrency)

    def start_open(self, schedule: ScheduleSpec, part: int, parts: int, max_inflight: int, start_wall_ns: int) -> None:
        """Follow part ``part`` of ``parts`` of the schedule, from a wall-clock instant common to all processes."""
        self.load = self.prepared.make_load()
        start_ns = time.perf_counter_ns() + (start_wall_ns - time.time_ns())
        self.load.engine.start_open(schedule.build(part, parts), max_inflight, start_ns)

    def _current(self) -> LocalLoad:
        if self.load is None:
            raise RuntimeError("no load started in this process")
        return self.load

    def open_window(self, resume: bool) -> None:
        self._current().open_window(resume)

    def close_window(self, drain: bool, timeout_s: float) -> tuple[ClosedWindow, LoadHealth]:
        load = self._current()
        closing = load.close_window(drain, timeout_s, self._give_up)
        stats = closing.stats
        closing.shares = [
            ProcessShare(
                self.spec.index,
                self.host,
                self.pid,
                stats.completed,
                stats.error_count,
                stats.late_sends,
                closing.cpu_ns,
                stats.duration_ns,
                stats.latency.encode(),
            )
        ]
        return closing, load.health()

    def _give_up(self) -> bool:
        health = self._current().health()
        return health.interrupted or self.watch.gone(health.connection_failures)

    def finished_in_window(self) -> int:
        return self._current().finished_in_window()

    def health(self) -> LoadHealth:
        return self._current().health() if self.load is not None else LoadHealth()

    def stop(self, finish_within_s: float | None = None) -> bool:
        load, self.load = self.load, None
        return load.stop(finish_within_s) if load is not None else True

    def close(self) -> list[str]:
        """Stop any load and release everything (regions unregistered and unlinked); the problems met."""
        with contextlib.suppress(Exception):
            self.stop()
        self._stack.close()
        return self.problems

    def call(self, method: str, args: tuple[Any, ...]) -> Any:
        """The coordinator's calls, by name (only the public methods above)."""
        if method.startswith("_") or method not in _CALLABLE:
            raise ValueError(f"a load process has no method {method!r}")
        return getattr(self, method)(*args)


_CALLABLE = frozenset(
    {"hello", "start_closed", "start_open", "open_window", "close_window", "finished_in_window", "health", "stop"}
)
