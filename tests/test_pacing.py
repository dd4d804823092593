"""Open-loop pacing: workers sleep until their send's instant (never before it) instead of spinning
through the last millisecond, and a stopping load wakes workers asleep until distant sends.

How close to the instant they wake is a figure of the machine: it is measured in
``benchmarks/open_loop_pacing.py``, not asserted here.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from perfprobe.load.engine import EngineSettings, LoadEngine
from perfprobe.load.pacing import AsyncPacer, GreenletPacer, Pacer, ThreadPacer, make_timerfd
from perfprobe.load.runtime import GreenletRuntime, ThreadRuntime
from perfprobe.load.schedule import Schedule
from perfprobe.measure.window import Recorder
from perfprobe.transport.base import Outcome, Sender

_now = time.perf_counter_ns
LINUX = sys.platform.startswith("linux")


def _waits_with(kind: str, deadlines_from_now_ns: list[int], wake_after_s: float | None = None) -> list[int]:
    """Wait with a pacer of ``kind`` for each instant in turn; how far past its instant each wait ended.

    With ``wake_after_s``, the pacer is woken that long after the first wait began (from another
    thread; for greenlets, from another greenlet of the same thread, as the engine's controller).
    """
    if kind == "asyncio":
        return asyncio.run(_async_waits(deadlines_from_now_ns, wake_after_s))
    pacer: Pacer = ThreadPacer() if kind == "thread" else GreenletPacer()
    if wake_after_s is not None:
        _wake_later(kind, pacer, wake_after_s)
    overshoots = []
    try:
        for offset in deadlines_from_now_ns:
            deadline = _now() + offset
            pacer.wait_until(deadline)
            overshoots.append(_now() - deadline)
    finally:
        pacer.close()
    return overshoots


def _wake_later(kind: str, pacer: Pacer, after_s: float) -> None:
    if kind == "greenlet":
        import gevent

        gevent.spawn_later(after_s, pacer.wake)
    else:
        threading.Timer(after_s, pacer.wake).start()


async def _async_waits(deadlines_from_now_ns: list[int], wake_after_s: float | None) -> list[int]:
    pacer = AsyncPacer()
    if wake_after_s is not None:
        threading.Timer(wake_after_s, pacer.wake).start()  # the engine's controller is another thread
    overshoots = []
    try:
        for offset in deadlines_from_now_ns:
            deadline = _now() + offset
            await pacer.wait_until(deadline)
            overshoots.append(_now() - deadline)
    finally:
        pacer.close()
    return overshoots


KINDS = ["thread", "greenlet", "asyncio"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_pacer_never_wakes_before_the_instant(kind: str) -> None:
    overshoots = _waits_with(kind, [2_000_000, 300_000, 5_000_000, 0, -1_000_000] * 4)
    assert min(overshoots) >= 0
    assert max(overshoots) < 1_000_000_000  # it woke at all (how soon after is the benchmark's)


@pytest.mark.skipif(not LINUX, reason="timerfd is Linux's")
@pytest.mark.parametrize("kind", ["greenlet", "asyncio"])
def test_event_loop_pacers_wait_on_a_timerfd_on_linux(kind: str) -> None:
    """gevent's and asyncio's own timers wake up to a millisecond late: on Linux they are not used."""
    pacer = GreenletPacer() if kind == "greenlet" else AsyncPacer()
    try:
        assert pacer.precise
    finally:
        pacer.close()


@pytest.mark.parametrize("kind", KINDS)
def test_wake_cuts_a_long_wait_short_and_every_later_one(kind: str) -> None:
    started = time.monotonic()
    overshoots = _waits_with(kind, [60_000_000_000, 60_000_000_000], wake_after_s=0.05)
    assert time.monotonic() - started < 10  # not the two minutes asked
    assert all(overshoot < 0 for overshoot in overshoots)  # both ended before their instants


def test_a_wake_before_the_wait_and_a_wake_after_close_are_harmless() -> None:
    pacer = ThreadPacer()
    pacer.wake()
    started = _now()
    pacer.wait_until(_now() + 30_000_000_000)
    assert _now() - started < 10_000_000_000
    pacer.close()
    pacer.wake()  # the controller may wake a worker that has just ended


def test_the_timerfd_counts_on_perf_counters_clock() -> None:
    """An instant armed from ``perf_counter_ns`` is the same instant for the timer (both CLOCK_MONOTONIC)."""
    timer = make_timerfd(blocking=True)
    if timer is None:
        assert not LINUX, "Linux has timerfd"
        return
    try:
        deadline = _now() + 20_000_000
        timer.arm(deadline)
        import os

        os.read(timer.fd, 8)
        woke = _now()
        assert deadline <= woke < deadline + 1_000_000_000
    finally:
        timer.close()


# ---- the engine: sleeping, not yielding, and woken by a stop ----------------------------------


class CountingThreadRuntime(ThreadRuntime):
    """Fake: the thread runtime, counting the yields (``sleep(0)``) its workers make."""

    def __init__(self) -> None:
        self.yields = 0
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        if seconds == 0:
            with self._lock:
                self.yields += 1
        super().sleep(seconds)


class FakeInstantSender(Sender):
    """Fake: answers at once, noting when each send was made."""

    def __init__(self, sent_at: list[int]) -> None:
        self.sent_at = sent_at

    def call(self, request: object) -> Outcome:
        self.sent_at.append(_now())
        return Outcome()


def _open_loop(runtime: Any, rate: float, workers: int, run_s: float, **settings: Any) -> tuple[Recorder, list[int]]:
    sent_at: list[int] = []
    recorder = Recorder()
    engine = LoadEngine(runtime, lambda: FakeInstantSender(sent_at), [b"r"], recorder, EngineSettings(**settings))
    engine.start_open(Schedule.at_rate(rate), workers)
    try:
        runtime.sleep(run_s)
    finally:
        assert engine.stop()
    return recorder, sent_at


def test_open_loop_workers_sleep_to_their_sends_rather_than_spin() -> None:
    """By default a worker sleeps until its send; ``spin_ns`` (``--send-spin``) yields through a last stretch."""
    sleeping = CountingThreadRuntime()
    _, sent = _open_loop(sleeping, rate=200, workers=4, run_s=0.5)
    assert len(sent) >= 50
    assert sleeping.yields == 0

    spinning = CountingThreadRuntime()
    _, sent = _open_loop(spinning, rate=200, workers=4, run_s=0.5, spin_ns=2_000_000)
    assert len(sent) >= 50
    assert spinning.yields > len(sent)  # many yields per send: the CPU the default no longer spends


def test_sends_are_never_early_and_keep_the_rate() -> None:
    recorder, sent = _open_loop(ThreadRuntime(), rate=400, workers=4, run_s=0.6)
    window = recorder.rotate()
    assert window.completed == len(sent)
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert sum(gaps) / len(gaps) == pytest.approx(2_500_000, rel=0.2)  # 400/s: one every 2.5 ms


def _stop_takes_s(runtime: Any, sleep: Callable[[float], None]) -> float:
    """Seconds ``stop`` takes while every worker sleeps until a send minutes away."""
    engine = LoadEngine(
        runtime,
        lambda: FakeInstantSender([]),
        [b"r"],
        Recorder(),
        EngineSettings(wait_slice_ns=600_000_000_000),  # no slice ends a wait: only the wake can
    )
    engine.start_open(Schedule.at_rate(0.01), 4)  # the first send at once, the next 100 s later
    sleep(0.3)
    started = time.monotonic()
    assert engine.stop()
    return time.monotonic() - started


def test_stop_wakes_thread_workers_asleep_until_distant_sends() -> None:
    assert _stop_takes_s(ThreadRuntime(), time.sleep) < 10


def test_stop_wakes_greenlet_workers_asleep_until_distant_sends() -> None:
    import gevent

    assert _stop_takes_s(GreenletRuntime(), gevent.sleep) < 10


@pytest.mark.parametrize("kind", ["thread", "greenlet"])
def test_without_a_timerfd_a_pacer_waits_on_an_event_that_wake_sets(kind: str, monkeypatch) -> None:
    """Not Linux (or no timerfd on the engine's clock): the fallback waits about as asked, and a wake ends it."""
    from perfprobe.load import pacing

    monkeypatch.setattr(pacing, "make_timerfd", lambda blocking: None)
    assert min(_waits_with(kind, [2_000_000, 0] * 3)) >= -1_000_000  # an event wait may round a little
    started = time.monotonic()
    overshoots = _waits_with(kind, [60_000_000_000], wake_after_s=0.05)
    assert time.monotonic() - started < 10 and overshoots[0] < 0
