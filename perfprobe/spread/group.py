"""The coordinator's side: load processes started together, driven window by window as one load.

Every window is opened and closed for all processes by the coordinator (paused and drained
together in closed loop), their windows merged exactly (HDR histograms add), so the sweeper,
its stability rule and its searches work on the merged windows unchanged, and the server's
statistics, read once per window, describe exactly the requests the processes completed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from perfprobe.client import InferenceClient
from perfprobe.client.tls import remove_written
from perfprobe.errors import LoadProcessLost
from perfprobe.load.schedule import ScheduleSpec
from perfprobe.load.windowed import ClosedWindow, LoadHealth
from perfprobe.measure.window import merge_concurrent
from perfprobe.spread.member import Hello, MemberSpec
from perfprobe.spread.orphans import release_orphans


class Member(Protocol):
    """One load process as the coordinator sees it, wherever it runs."""

    index: int
    region_token: str
    lost: str | None

    def started(self) -> Hello: ...

    def submit(self, method: str, *args: Any) -> None: ...

    def result(self, timeout_s: float) -> Any: ...

    def close(self, timeout_s: float) -> list[str]: ...


def split_count(total: int, parts: int) -> list[int]:
    """``total`` dealt over ``parts`` as evenly as possible: shares differ by at most one and add up to ``total``."""
    base, extra = divmod(total, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]


def closed_shares(concurrency: int, levels: list[float | None], members: int) -> list[list[int]]:
    """Each load process's requests in flight per model: the sweep's ``concurrency`` or the model's own level.

    Each model's total is split as ``split_count`` does, and the models' extra requests are dealt
    round the processes in turn (each model's from where the last one's ended), so the processes'
    totals differ by at most one as well.
    """
    per_model = []
    turn = 0
    for level in levels:
        total = int(level) if level is not None else concurrency
        shares = split_count(total, members)
        per_model.append(shares[-turn:] + shares[:-turn] if turn else shares)
        turn = (turn + total) % members
    return [[shares[index] for shares in per_model] for index in range(members)]


@dataclass
class GroupSettings:
    call_timeout_s: float = 90.0  # longest a load process may take to answer a call without a time of its own
    # a call that takes its own time (a drain's timeout, a stop's finishing time): that, and this much more
    answer_margin_s: float = 5.0
    close_timeout_s: float = 30.0
    health_every_s: float = 0.2  # how often, at most, the processes are asked how the load is going
    start_lead_s: float = 0.05  # open loop: the common start is this far ahead, so every process has the call


@dataclass
class LoadGroup:
    """The run's load processes, started once and given a load per level."""

    members: list[Member]
    hellos: list[Hello]
    settings: GroupSettings = field(default_factory=GroupSettings)
    # each model's own level in the run's order (None: it follows the sweep); one model: [None]
    levels: list[float | None] = field(default_factory=lambda: [None])

    @property
    def worker_kind(self) -> str:
        return self.hellos[0].worker_kind

    @property
    def notes(self) -> list[str]:
        return sorted({note for hello in self.hellos for note in hello.notes})

    @property
    def hosts(self) -> list[str]:
        return [hello.host for hello in self.hellos]

    @property
    def nodes(self) -> list[str]:
        """The Ray nodes the processes run on (empty on one machine)."""
        return [hello.node for hello in self.hellos if hello.node]

    def make_load(self) -> GroupLoad:
        return GroupLoad(self)


class GroupLoad:
    """One level's load over the group: what the sweeper drives (``perfprobe.load.windowed.WindowedLoad``)."""

    poll_s = 0.01

    def __init__(self, group: LoadGroup) -> None:
        self.group = group
        self.settings = group.settings
        self.active: list[Member] = []
        self._where = ""
        self._opened_ns = time.perf_counter_ns()
        self._cpu_opened = time.process_time_ns()
        self._health = LoadHealth()
        self._health_at = float("-inf")

    # ---- calls ------------------------------------------------------------------------------

    def _call(self, method: str, *args: Any, takes_s: float | None = None) -> list[Any]:
        """Call ``method`` with the same arguments on every active process (see ``_call_each``)."""
        return self._call_each(method, [args] * len(self.active), takes_s)

    def _call_each(self, method: str, per_member: Sequence[tuple[Any, ...]], takes_s: float | None = None) -> list[Any]:
        """Call ``method`` on every active process at once, each with its own arguments; answers in order.

        Each answer is waited for ``takes_s`` (the call's own time) plus a margin, or the group's
        call timeout: a process that stopped (SIGSTOP, a frozen machine) is given up on in bounded time.
        """
        wait_s = self.settings.call_timeout_s if takes_s is None else takes_s + self.settings.answer_margin_s
        try:
            for member, member_args in zip(self.active, per_member, strict=True):
                member.submit(method, *member_args)
            return [member.result(wait_s) for member in self.active]
        except LoadProcessLost as exc:
            raise LoadProcessLost(f"{exc} at {self._where}; levels finished before it are kept") from None

    # ---- the load ---------------------------------------------------------------------------

    def start_closed(self, concurrency: int) -> None:
        per_member = closed_shares(concurrency, self.group.levels, len(self.group.members))
        loading = [
            (member, shares) for member, shares in zip(self.group.members, per_member, strict=True) if any(shares)
        ]
        self.active = [member for member, _ in loading]
        self._where = f"concurrency {concurrency}"
        self._call_each("start_closed", [(shares,) for _, shares in loading])

    def start_open(self, schedule: ScheduleSpec, max_inflight: int) -> None:
        members = self.group.members
        parts = len(members)
        self.active = list(members)
        self._where = f"request rate {schedule.rate:g}"
        in_flight = max(1, -(-max_inflight // parts))  # each process may need the whole burst of its part
        start_wall_ns = time.time_ns() + int(self.settings.start_lead_s * 1e9)
        self._call_each("start_open", [(schedule, part, parts, in_flight, start_wall_ns) for part in range(parts)])

    def open_window(self, resume: bool) -> None:
        self._call("open_window", resume)
        self._opened_ns = time.perf_counter_ns()
        self._cpu_opened = time.process_time_ns()

    def close_window(self, drain: bool, timeout_s: float, give_up: Callable[[], bool]) -> ClosedWindow:
        # each process gives up on its drain by itself (its requests found no server): ``give_up`` is the
        # coordinator's and cannot be asked from there
        answers = self._call("close_window", drain, timeout_s, takes_s=timeout_s if drain else 0.0)
        coordinating_ns = time.process_time_ns() - self._cpu_opened
        windows: list[ClosedWindow] = [window for window, _ in answers]
        self._health = _merged_health([health for _, health in answers], self.active)
        self._health_at = time.monotonic()
        return ClosedWindow(
            merge_concurrent([window.stats for window in windows]),
            sum(window.cpu_ns for window in windows) + coordinating_ns,  # client CPU: the load and its coordination
            all(window.drained for window in windows),
            [share for window in windows for share in window.shares],
            {  # several models at once: each model's windows from every process, merged as the whole is
                name: merge_concurrent([window.parts[name] for window in windows]) for name in windows[0].parts
            },
        )

    def window_started_ns(self) -> int:
        return self._opened_ns

    def finished_in_window(self) -> int:
        return sum(self._call("finished_in_window"))

    def health(self) -> LoadHealth:
        if time.monotonic() - self._health_at >= self.settings.health_every_s:
            self._health = _merged_health(self._call("health"), self.active)
            self._health_at = time.monotonic()
        return self._health

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def stop(self, finish_within_s: float | None = None) -> bool:
        """Stop every process's load; a process already lost is left to the group's clean-up."""
        stopped = True
        live = [member for member in self.active if member.lost is None]
        for member in live:
            with contextlib.suppress(LoadProcessLost):
                member.submit("stop", finish_within_s)
        wait_s = (finish_within_s or 0.0) + self.settings.answer_margin_s
        for member in live:
            try:
                stopped = bool(member.result(wait_s)) and stopped
            except LoadProcessLost:
                stopped = False
        return stopped and len(live) == len(self.active)


def _merged_health(parts: list[LoadHealth], members: list[Member]) -> LoadHealth:
    return LoadHealth(
        any(part.interrupted for part in parts),
        sum(part.connection_failures for part in parts),
        [
            f"load process {member.index}: {failure}"
            for part, member in zip(parts, members, strict=True)
            for failure in part.worker_failures
        ],
        sum(part.sends_made for part in parts),
        all(part.replayed for part in parts),
    )


@contextlib.contextmanager
def running_group(
    specs: list[MemberSpec],
    start: Callable[[MemberSpec], Member],
    control: InferenceClient,
    shared_memory: str,
    on_problem: Callable[[str], None],
    settings: GroupSettings | None = None,
    levels: list[float | None] | None = None,
) -> Iterator[LoadGroup]:
    """Start every load process (all at once), yield them as a group, and always end them.

    A process that died cannot release its shared memory: the coordinator, which named its
    regions, unregisters and unlinks them.
    """
    from perfprobe.interrupts import shielded

    settings = settings or GroupSettings()
    members: list[Member] = []
    try:
        for spec in specs:
            members.append(start(spec))
        hellos = [member.started() for member in members]
        yield LoadGroup(members, hellos, settings, levels or [None])
    finally:
        with shielded(lambda: [f"load process {member.index}" for member in members]) as shield:
            for member in members:
                with shield.step():
                    for problem in member.close(settings.close_timeout_s):
                        on_problem(f"warning: {problem}")
                with shield.step():  # its TLS files, should it have been killed (on a cluster, its node keeps them)
                    remove_written(member.region_token)
                if member.lost is not None and shared_memory in ("system", "cuda"):
                    with shield.step():
                        for problem in release_orphans(control, member.region_token, shared_memory):
                            on_problem(f"warning: {problem}")
            members.clear()
