"""Several models' loads as one: windows open and close for all of them together.

Each model has its own engine, recorder and requests in this process; the sweeper drives the
combination as it drives one load, and each closed window carries every model's own figures
(``ClosedWindow.parts``) beside the combined ones, so per-model results come from the same
windows and the same server snapshots.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from perfprobe.load.schedule import ScheduleSpec
from perfprobe.load.windowed import ClosedWindow, LoadHealth, LocalLoad
from perfprobe.measure.window import merge_concurrent, tag_requests


@dataclass
class ModelLoad:
    """One model's load in the combination, and the fixed level it keeps (None: the sweep's level)."""

    name: str
    load: LocalLoad
    level: float | None = None


class CombinedLoad:
    """A ``WindowedLoad`` over several models' loads in this process."""

    poll_s = LocalLoad.poll_s

    def __init__(self, parts: list[ModelLoad]) -> None:
        if not parts:
            raise ValueError("a combined load needs at least one model")
        self.parts = parts

    def start_closed(self, concurrency: int) -> None:
        self.start_closed_each([int(part.level) if part.level is not None else concurrency for part in self.parts])

    def start_closed_each(self, concurrencies: list[int]) -> None:
        """Each model at its own concurrency (a load process's shares of the run's levels); 0 starts none."""
        for part, concurrency in zip(self.parts, concurrencies, strict=True):
            part.load.start_closed(concurrency)

    def start_open(
        self, schedule: ScheduleSpec, max_inflight: int, part: int = 0, parts: int = 1, start_ns: int | None = None
    ) -> None:
        """Each model at its own rate, else on the run's schedule; a load process follows part ``part`` of each.

        A model's own rate keeps the run's distribution; an intervals file is the run's schedule only.
        """
        for offset, model in enumerate(self.parts):
            # independent arrivals per model: the same seed would send every model's requests in step
            own = dataclasses.replace(schedule, seed=schedule.seed + offset)
            if model.level is not None:
                own = dataclasses.replace(own, rate=model.level, intervals_us=None, trace=None)
            model.load.start_open(own, max_inflight, part, parts, start_ns)

    def open_window(self, resume: bool) -> None:
        for part in self.parts:
            part.load.open_window(resume)

    def close_window(self, drain: bool, timeout_s: float, give_up: Callable[[], bool]) -> ClosedWindow:
        if drain:  # every model stops sending at the same moment; then each one's requests in flight come back
            for part in self.parts:
                part.load.pause()
        closed = [part.load.close_window(drain, timeout_s, give_up) for part in self.parts]
        stats = {
            part.name: tag_requests(window.stats, model=part.name)
            for part, window in zip(self.parts, closed, strict=True)
        }
        return ClosedWindow(
            merge_concurrent(list(stats.values())),
            max(window.cpu_ns for window in closed),  # one process: each part measured the same CPU clock
            all(window.drained for window in closed),
            parts=stats,
        )

    def window_started_ns(self) -> int:
        return min(part.load.window_started_ns() for part in self.parts)

    def finished_in_window(self) -> int:
        return sum(part.load.finished_in_window() for part in self.parts)

    def health(self) -> LoadHealth:
        """Every model's health; the schedule's progress (a trace's) from the models that follow it."""
        each = [part.load.health() for part in self.parts]
        following = [h for h, part in zip(each, self.parts, strict=True) if part.level is None]
        return LoadHealth(
            interrupted=any(h.interrupted for h in each),
            connection_failures=sum(h.connection_failures for h in each),
            worker_failures=[failure for h in each for failure in h.worker_failures],
            sends_made=sum(h.sends_made for h in following),
            replayed=all(h.replayed for h in following),
        )

    def sleep(self, seconds: float) -> None:
        self.parts[0].load.sleep(seconds)

    def stop(self, finish_within_s: float | None = None) -> bool:
        """Stop every model's load; one that raises (a second Ctrl-C) does not spare the others."""
        stopped, raised = [], None
        for part in self.parts:
            try:
                stopped.append(part.load.stop(finish_within_s))
            except BaseException as exc:  # the rest are stopped without finishing, then it goes on up
                raised, finish_within_s = raised or exc, None
                stopped.append(False)
        if raised is not None:
            raise raised
        return all(stopped)
