"""A load the sweeper opens and closes measurement windows on, in this process or spread over several.

The sweeper asks the same things of one engine in this process (``LocalLoad``) and of a group of
load processes (``perfprobe.spread``): start at a level, open a window, close it (after draining
the requests in flight when asked) and hand back what it measured, say how the load is doing, stop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from perfprobe.load.engine import EngineSettings, LoadEngine, SequencePlan
from perfprobe.load.runtime import Runtime
from perfprobe.load.schedule import ScheduleSpec
from perfprobe.measure.window import Recorder, WindowStats
from perfprobe.transport.base import Sender


@dataclass
class ProcessShare:
    """What one load process did in one window (results.json keeps these per level)."""

    index: int
    host: str
    pid: int
    completed: int
    errors: int
    late_sends: int
    cpu_ns: int
    duration_ns: int
    latency: dict[str, object] | None = None  # this process's own latency histogram, encoded (not in results.json)

    def add(self, other: ProcessShare) -> ProcessShare:
        """This share and a later window's of the same process, as one (histograms are not summed here)."""
        return ProcessShare(
            self.index,
            self.host,
            self.pid,
            self.completed + other.completed,
            self.errors + other.errors,
            self.late_sends + other.late_sends,
            self.cpu_ns + other.cpu_ns,
            self.duration_ns + other.duration_ns,
        )

    @property
    def cpu_share(self) -> float:
        """The fraction of one core the process used while loading."""
        return self.cpu_ns / self.duration_ns if self.duration_ns else 0.0

    def as_dict(self) -> dict[str, object]:
        finished = self.completed + self.errors
        return {
            "process": self.index,
            "host": self.host,
            "pid": self.pid,
            "requests": self.completed,
            "errors": self.errors,
            "late_sends": self.late_sends,
            "client_cpu_ns": self.cpu_ns,
            "client_cpu_us_per_request": round(self.cpu_ns / finished / 1000, 2) if finished else None,
            "client_cpu_share": round(self.cpu_share, 3),
        }


@dataclass
class ClosedWindow:
    """A window as it closed: merged statistics, client CPU, whether it was drained, per-process shares."""

    stats: WindowStats
    cpu_ns: int
    drained: bool
    shares: list[ProcessShare] = field(default_factory=list)
    parts: dict[str, WindowStats] = field(default_factory=dict)  # several models at once: each model's own


@dataclass
class LoadHealth:
    """What the sweeper watches between windows."""

    interrupted: bool = False  # a worker caught Ctrl-C / SIGTERM
    connection_failures: int = 0  # requests that found no server
    worker_failures: list[str] = field(default_factory=list)  # workers that ended while meant to run
    sends_made: int = 0  # open loop: the schedule's sends made and recorded so far
    replayed: bool = False  # a schedule with an end (a trace) is done and its last request answered


class WindowedLoad(Protocol):
    """What the sweeper drives (see the module docstring)."""

    poll_s: float  # how often a wait asks again how the window is going

    def start_closed(self, concurrency: int) -> None: ...

    def start_open(self, schedule: ScheduleSpec, max_inflight: int) -> None: ...

    def open_window(self, resume: bool) -> None: ...

    def close_window(self, drain: bool, timeout_s: float, give_up: Callable[[], bool]) -> ClosedWindow: ...

    def window_started_ns(self) -> int: ...

    def finished_in_window(self) -> int: ...

    def health(self) -> LoadHealth: ...

    def sleep(self, seconds: float) -> None: ...

    def stop(self, finish_within_s: float | None = None) -> bool:
        """Stop the load; with ``finish_within_s``, first send END for every live sequence (the server is up)."""


class LocalLoad:
    """One engine and its recorder, in this process: the load of a run without ``--processes``."""

    poll_s = 0.001

    def __init__(self, engine: LoadEngine, recorder: Recorder) -> None:
        self.engine = engine
        self.recorder = recorder
        self._cpu_opened = time.process_time_ns()

    @classmethod
    def build(
        cls,
        runtime: Runtime,
        sender_factory: Callable[[], Sender],
        requests: list[Any],
        settings: EngineSettings | None = None,
        per_worker_requests: list[list[Any]] | None = None,
        sequences: SequencePlan | None = None,
        send_items: tuple[int, ...] = (),
    ) -> LocalLoad:
        """A fresh engine recording into a fresh recorder (one per load level)."""
        recorder = Recorder(record_requests=settings is not None and settings.record_requests)
        engine = LoadEngine(
            runtime, sender_factory, requests, recorder, settings, per_worker_requests, sequences, send_items
        )
        return cls(engine, recorder)

    def start_closed(self, concurrency: int) -> None:
        self.engine.start_closed(concurrency)

    def start_open(
        self, schedule: ScheduleSpec, max_inflight: int, part: int = 0, parts: int = 1, start_ns: int | None = None
    ) -> None:
        """Follow part ``part`` of ``parts`` of the schedule (a load process's), from ``start_ns`` when given."""
        self.engine.start_open(schedule.build(part, parts), max_inflight, start_ns)

    def open_window(self, resume: bool) -> None:
        if resume:
            self.engine.resume()
            self.recorder.restart_clock()  # the pause at the boundary is not load time
        self._cpu_opened = time.process_time_ns()

    def close_window(self, drain: bool, timeout_s: float, give_up: Callable[[], bool]) -> ClosedWindow:
        drained = self.engine.pause_and_drain(timeout_s, give_up) if drain else False
        cpu_ns = time.process_time_ns() - self._cpu_opened
        # a replayed trace's last window ends with its last answer, not when the sweeper noticed it
        return ClosedWindow(self.recorder.rotate(self.engine.replay_end_ns()), cpu_ns, drained)

    def window_started_ns(self) -> int:
        return self.recorder.current.start_ns

    def finished_in_window(self) -> int:
        return self.recorder.current.finished()

    def health(self) -> LoadHealth:
        engine = self.engine
        made, replayed = engine.schedule_progress()
        return LoadHealth(engine.interrupted, engine.connection_failures, engine.worker_failures, made, replayed)

    def sleep(self, seconds: float) -> None:
        self.engine.runtime.sleep(seconds)

    def stop(self, finish_within_s: float | None = None) -> bool:
        finished = False
        try:  # a signal while finishing still stops every worker
            finished = self.engine.finish_sequences(finish_within_s) if finish_within_s is not None else True
        finally:
            stopped = self.engine.stop()
        return stopped and finished

    def pause(self) -> None:
        """No new request from now on (until the next window opens); those in flight go on."""
        self.engine.pause()
