"""The engine's own fault handling, with fakes (no server): a raising sender, a dying worker."""

from __future__ import annotations

import pytest

from perfprobe.errors import LoadFailed
from perfprobe.load.engine import LoadEngine
from perfprobe.load.runtime import ThreadRuntime
from perfprobe.load.sweeper import MeasureSettings, Sweeper
from perfprobe.load.windowed import LocalLoad
from perfprobe.measure.stability import StabilityRule
from perfprobe.measure.window import Recorder
from perfprobe.transport.base import Outcome, Sender


class FakeFlakySender(Sender):
    """Fake: every third call raises, as a bug in a sender or client would."""

    def __init__(self) -> None:
        self.calls = 0

    def call(self, request: object) -> Outcome:
        self.calls += 1
        if self.calls % 3 == 0:
            raise RuntimeError("unforeseen")
        return Outcome()


class FakeStatsClient:
    """Fake: a server that is alive and reports no statistics."""

    def inference_statistics(self, *args: object) -> dict:
        return {"model_stats": []}

    def is_server_live(self) -> bool:
        return True


SETTINGS = MeasureSettings(window_ms=150, stability=StabilityRule(2, 0.5), max_trials=2)


def _sweeper(sender_factory) -> Sweeper:
    return Sweeper(
        lambda: LocalLoad.build(ThreadRuntime(), sender_factory, [b"request"]),
        FakeStatsClient(),
        ["fake"],
        SETTINGS,
    )


def test_a_raising_sender_is_an_error_and_its_worker_goes_on() -> None:
    result = _sweeper(FakeFlakySender).run_level("concurrency", 2)
    merged = result.merged()
    assert merged.errors.get("CLIENT RuntimeError", 0) > 0
    # two of three succeed, still; each worker's cycle of three may be cut at each window's two ends
    allowance = 2 * 2 * len(result.reported)
    assert merged.completed >= 2 * merged.errors["CLIENT RuntimeError"] - allowance


def test_a_worker_that_dies_fails_the_level_loudly() -> None:
    def factory() -> Sender:
        raise OSError("no sockets left")  # the worker cannot even start

    with pytest.raises(LoadFailed, match="worker 0: OSError: no sockets left"):
        _sweeper(factory).run_level("concurrency", 1)


def test_drain_sees_every_request_of_the_window() -> None:
    """With thread workers, what the window recorded is all that was sent before the pause."""
    sent = []

    class FakeCountingSender(Sender):
        def call(self, request: object) -> Outcome:
            sent.append(1)
            return Outcome()

    recorder = Recorder()
    engine = LoadEngine(ThreadRuntime(), FakeCountingSender, [b"request"], recorder)
    engine.start_closed(4)
    try:
        for _ in range(20):
            engine.runtime.sleep(0.005)
            assert engine.pause_and_drain(5)
            before = len(sent)
            assert recorder.current.finished() == before  # every request sent is recorded by now
            engine.runtime.sleep(0.002)
            assert len(sent) == before  # and nothing goes out while paused
            engine.resume()
    finally:
        engine.stop()
    assert len(sent) > 20
