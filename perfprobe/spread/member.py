"""One load process: its own connections, workers, recorder and shared-memory regions.

Everything it is asked arrives as a method call from the coordinator (through a pipe, or a Ray
actor that forwards to the pipe); everything it answers is plain, picklable data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perfprobe.client import make_client
from perfprobe.client.model import ModelDescription
from perfprobe.client.tls import TlsPems, client_options, written
from perfprobe.load.combined import CombinedLoad, ModelLoad
from perfprobe.load.liveness import ServerWatch
from perfprobe.load.open_files import ensure_open_files
from perfprobe.load.prepare import LoadSpec, PreparedLoad, prepared_load
from perfprobe.load.schedule import ScheduleSpec
from perfprobe.load.windowed import ClosedWindow, LoadHealth, LocalLoad, ProcessShare
from perfprobe.measure.window import tag_requests


@dataclass
class MemberModel:
    """One model's load in a load process (several models at once: one each, in the run's order)."""

    name: str
    load: LoadSpec  # this process's part: its share of the requests in flight, its own sequence ids
    model: ModelDescription
    items: list[dict[str, np.ndarray]]
    level: float | None = None  # a level of the model's own (the whole run's); None: it follows the sweep


@dataclass
class MemberSpec:
    """What a load process needs, all of it picklable: the coordinator read the models and data once."""

    index: int
    models: list[MemberModel]
    region_token: str  # names this process's shared-memory regions: the coordinator can release them
    greenlets: bool  # the process patches for gevent first thing
    tls: TlsPems | None = None  # the TLS files' contents (the loads' own ``tls`` is left None): written where it runs


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
            if spec.tls is not None:  # the coordinator's paths may not exist here: its files, written here
                files = self._stack.enter_context(written(spec.tls, spec.region_token))
                spec.models = [
                    dataclasses.replace(part, load=dataclasses.replace(part.load, tls=files)) for part in spec.models
                ]
            first = spec.models[0].load
            ensure_open_files(sum(part.load.max_inflight for part in spec.models))  # the models share this process
            self.control = self._stack.enter_context(
                make_client(
                    first.protocol,
                    first.url,
                    headers=first.headers,
                    timeout_s=first.request_timeout_s,
                    **client_options(first.tls),
                )
            )
            several = len(spec.models) > 1
            self.prepared: list[PreparedLoad] = [
                self._stack.enter_context(
                    prepared_load(
                        part.load,
                        self.control,
                        part.model,
                        part.items,
                        self.problems.append,
                        f"{spec.region_token}_m{number}" if several else spec.region_token,
                    )
                )
                for number, part in enumerate(spec.models)
            ]
        except BaseException:
            self._stack.close()
            raise
        self.watch = ServerWatch(self.control)
        self.load: LocalLoad | CombinedLoad | None = None
        self.host = socket.gethostname()
        self.pid = os.getpid()

    def hello(self) -> Hello:
        paths = [prepared.send_path for prepared in self.prepared]
        notes = list(dict.fromkeys(note for path in paths for note in path.notes))
        return Hello(self.spec.index, self.host, self.pid, paths[0].runtime.kind, notes)

    def _fresh_load(self) -> LocalLoad | CombinedLoad:
        """One level's load: the model's, or every model's combined so their windows open and close together."""
        if len(self.prepared) == 1:
            return self.prepared[0].make_load()
        return CombinedLoad(
            [
                ModelLoad(part.name, prepared.make_load(), part.level)
                for part, prepared in zip(self.spec.models, self.prepared, strict=True)
            ]
        )

    def start_closed(self, concurrencies: list[int]) -> None:
        """Each model at this process's share of its concurrency (in the run's order of models)."""
        self.load = load = self._fresh_load()
        if isinstance(load, CombinedLoad):
            load.start_closed_each(concurrencies)
        else:
            load.start_closed(concurrencies[0])

    def start_open(self, schedule: ScheduleSpec, part: int, parts: int, max_inflight: int, start_wall_ns: int) -> None:
        """Follow part ``part`` of ``parts`` of the schedule, from a wall-clock instant common to all processes."""
        self.load = self._fresh_load()
        start_ns = time.perf_counter_ns() + (start_wall_ns - time.time_ns())
        self.load.start_open(schedule, max_inflight, part, parts, start_ns)

    def _current(self) -> LocalLoad | CombinedLoad:
        if self.load is None:
            raise RuntimeError("no load started in this process")
        return self.load

    def open_window(self, resume: bool) -> None:
        self._current().open_window(resume)

    def close_window(self, drain: bool, timeout_s: float) -> tuple[ClosedWindow, LoadHealth]:
        load = self._current()
        closing = load.close_window(drain, timeout_s, self._give_up)
        closing.stats = stats = tag_requests(closing.stats, process=self.spec.index)
        closing.parts = {name: tag_requests(part, process=self.spec.index) for name, part in closing.parts.items()}
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
