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


class FakeFailingStatsClient(FakeStatsClient):
    """Fake: a server whose statistics endpoint answers 500 (it still serves inferences)."""

    def inference_statistics(self, *args: object) -> dict:
        from perfprobe.client.errors import InferenceServerError

        raise InferenceServerError("statistics are broken", http_status=500)


def test_unreadable_statistics_leave_the_server_figures_empty_with_the_reason() -> None:
    from perfprobe.report.figures import FIGURES, level_values

    sweeper = Sweeper(
        lambda: LocalLoad.build(ThreadRuntime(), lambda: FakeCountingSender([]), [b"request"]),
        FakeFailingStatsClient(),
        ["fake"],
        SETTINGS,
    )
    result = sweeper.run_level("concurrency", 2)
    assert result.server_unmeasured == "the server's statistics could not be read ([HTTP 500] statistics are broken)"
    assert f"server figures not measured: {result.server_unmeasured}" in result.warnings
    values = level_values(result, 1)
    server_columns = [figure.column for figure in FIGURES if figure.from_server]
    assert "Server Queue" in server_columns and "Network+Server Send/Recv" in server_columns
    assert all(values[column] == "" for column in server_columns), {c: values[c] for c in server_columns}
    assert values["Completed"] > 0 and values["p99 latency"] != ""


class FakeCountingSender(Sender):
    """Fake: answers at once and notes every send."""

    def __init__(self, sent: list[int]) -> None:
        self.sent = sent

    def call(self, request: object) -> Outcome:
        self.sent.append(1)
        return Outcome()


def test_a_drained_level_sends_nothing_no_window_or_warm_up_accounts_for() -> None:
    """A server's own count of a closed-loop level is its windows' and its warm-up's requests, exactly."""
    sent: list[int] = []
    sweeper = Sweeper(
        lambda: LocalLoad.build(ThreadRuntime(), lambda: FakeCountingSender(sent), [b"request"]),
        FakeStatsClient(),
        ["fake"],
        MeasureSettings(window_ms=100, stability=StabilityRule(2, 0.9), max_trials=3),
    )
    result = sweeper.run_level("concurrency", 3)
    assert result.warmup is not None
    recorded = sum(w.stats.completed + w.stats.error_count for w in result.windows)
    assert len(sent) == recorded + result.warmup.completed + result.warmup.error_count


def test_errors_outside_the_reported_windows_are_said() -> None:
    """Item 5: the warm-up's errors are in no reported window, yet the level says how many and which."""
    import threading

    calls = []
    lock = threading.Lock()

    class FakeEarlyFailingSender(Sender):
        def call(self, request: object) -> Outcome:
            with lock:
                calls.append(1)
                early = len(calls) <= 20
            return Outcome(error="UNAVAILABLE", reason="starting up") if early else Outcome()

    settings = MeasureSettings(window_ms=100, stability=StabilityRule(2, 0.9), max_trials=3, warmup_requests=60)
    sweeper = Sweeper(
        lambda: LocalLoad.build(ThreadRuntime(), FakeEarlyFailingSender, [b"request"]),
        FakeStatsClient(),
        ["fake"],
        settings,
    )
    result = sweeper.run_level("concurrency", 2)
    assert result.merged().error_count == 0
    assert "20 errors outside the reported windows (warm-up and earlier windows): UNAVAILABLE x20" in result.warnings
