"""The load engine's own logic, without a server: fake senders and fake clients drive it.

In the spirit of perf_analyzer's profiler unit tests: draining at window boundaries, pause and
resume, stopping with requests in flight, timeouts whose answers arrive late, a failing decode,
the stability decision and the level searches. Every fake is named as one.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import pytest

from perfprobe.client.errors import TIMEOUT
from perfprobe.load.engine import EngineSettings, LoadEngine
from perfprobe.load.runtime import GreenletRuntime, ThreadRuntime
from perfprobe.load.search import LatencyLimit, search_levels
from perfprobe.load.sweeper import LevelResult, MeasureSettings, Sweeper, WindowRecord, _foreign_load_warning
from perfprobe.load.windowed import LocalLoad
from perfprobe.measure.server_stats import ServerDelta
from perfprobe.measure.stability import StabilityRule
from perfprobe.measure.window import Recorder
from perfprobe.transport.base import BlockingSender, Outcome, Sender
from perfprobe.transport.kserve_grpc import FutureSender


class FakeServer:
    """Fake: counts what it executed, as Triton's statistics would, and answers after a delay."""

    def __init__(self, delay_s: float = 0.001) -> None:
        self.delay_s = delay_s
        self.executed = 0
        self.in_progress = 0
        self.started_while_paused = 0
        self._lock = threading.Lock()

    def execute(self) -> None:
        with self._lock:
            self.in_progress += 1
        time.sleep(self.delay_s)
        with self._lock:
            self.in_progress -= 1
            self.executed += 1

    # the two calls the sweeper makes of a control client
    def inference_statistics(self, model_name: str = "", model_version: str = "") -> dict[str, Any]:
        with self._lock:
            done = self.executed
        stats = {"success": {"count": done, "ns": done * 1000}}
        for phase in ("queue", "compute_input", "compute_infer", "compute_output"):
            stats[phase] = {"count": done, "ns": done * 250}
        return {
            "model_stats": [
                {
                    "name": "fake",
                    "version": "1",
                    "inference_count": done,
                    "execution_count": done,
                    "inference_stats": stats,
                }
            ]
        }

    def is_server_live(self) -> bool:
        return True


class FakeServerSender(Sender):
    """Fake: a blocking send to the fake server."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server

    def call(self, request: object) -> Outcome:
        self.server.execute()
        return Outcome()


def _engine(server: FakeServer, recorder: Recorder, runtime: Any = None, **settings: Any) -> LoadEngine:
    return LoadEngine(
        runtime or ThreadRuntime(),
        lambda: FakeServerSender(server),
        [b"request"],
        recorder,
        EngineSettings(**settings),
    )


@pytest.mark.parametrize("concurrency", [1, 4, 16])
def test_a_drained_window_holds_exactly_what_the_server_executed(concurrency: int) -> None:
    """The in-flight count is taken with the pause flag: after the drain, client == server, always."""
    server, recorder = FakeServer(0.0005), Recorder()
    engine = _engine(server, recorder)
    engine.start_closed(concurrency)
    try:
        recorded = 0
        for _ in range(30):
            time.sleep(0.003)
            assert engine.pause_and_drain(5)
            recorded += recorder.rotate().completed
            assert server.in_progress == 0
            assert recorded == server.executed  # nothing on its way, nothing unrecorded
            engine.resume()
    finally:
        assert engine.stop()
    assert recorded > 30


def test_nothing_starts_while_paused_and_load_resumes_after() -> None:
    server, recorder = FakeServer(0.0005), Recorder()
    engine = _engine(server, recorder)
    engine.start_closed(4)
    try:
        time.sleep(0.02)
        assert engine.pause_and_drain(5)
        held = server.executed
        time.sleep(0.05)
        assert server.executed == held and engine.in_flight() == 0
        engine.resume()
        time.sleep(0.05)
        assert server.executed > held
    finally:
        engine.stop()


class FakeHangingSender(Sender):
    """Fake: a request that never gets an answer until the engine aborts it (a dead stream)."""

    def __init__(self) -> None:
        self._aborted = threading.Event()

    def call(self, request: object) -> Outcome:
        self._aborted.wait(10)
        return Outcome(error="STOPPED")

    def abort(self) -> None:
        self._aborted.set()


class FakeDeafSender(Sender):
    """Fake: a request that ignores abort and blocks until released by the test."""

    release = threading.Event()

    def call(self, request: object) -> Outcome:
        self.release.wait(10)
        return Outcome()


def test_stop_with_requests_in_flight_aborts_them() -> None:
    engine = LoadEngine(ThreadRuntime(), FakeHangingSender, [b"r"], Recorder(), EngineSettings(stop_timeout_s=5))
    engine.start_closed(3)
    time.sleep(0.05)
    assert engine.in_flight() == 3
    started = time.monotonic()
    assert engine.stop()
    assert time.monotonic() - started < 2  # aborted, not waited out


class FakeCancellableSender(Sender):
    """Fake: a 20 ms request that counts the times it was abandoned (cancelled) before its answer."""

    cancelled = 0
    answered = 0
    lock = threading.Lock()

    def __init__(self) -> None:
        self._aborted = threading.Event()

    def call(self, request: object) -> Outcome:
        if self._aborted.wait(0.02):
            with self.lock:
                FakeCancellableSender.cancelled += 1
            return Outcome(error="STOPPED")
        with self.lock:
            FakeCancellableSender.answered += 1
        return Outcome()

    def abort(self) -> None:
        self._aborted.set()


@pytest.mark.parametrize("load_kind", ["concurrency", "rate"])
def test_a_level_that_ends_normally_cancels_nothing_in_flight(load_kind: str) -> None:
    """Triton 2.51 can crash on a cancelled unary gRPC request: a level's end waits for the answers."""
    from perfprobe.load.schedule import ScheduleSpec

    FakeCancellableSender.cancelled = FakeCancellableSender.answered = 0
    settings = MeasureSettings(window_ms=60, stability=StabilityRule(2, 0.5), max_trials=2, drain=False)
    sweeper = Sweeper(
        lambda: LocalLoad.build(ThreadRuntime(), FakeCancellableSender, [b"r"]), FakeServer(), ["fake"], settings
    )
    if load_kind == "concurrency":  # undrained windows: requests are in flight when the level ends
        sweeper.run_level("concurrency", 4)
    else:
        sweeper.run_level("rate", 400, ScheduleSpec(400), max_inflight=8)
    assert FakeCancellableSender.answered > 0 and FakeCancellableSender.cancelled == 0
    # what the level's end used to do, and still does without a server: stop at once, cancelling
    load = LocalLoad.build(ThreadRuntime(), FakeCancellableSender, [b"r"])
    load.start_closed(4)
    time.sleep(0.05)
    assert load.stop(None) and FakeCancellableSender.cancelled > 0


def test_stop_reports_workers_that_would_not_finish() -> None:
    settings = EngineSettings(stop_timeout_s=0.2)
    engine = LoadEngine(ThreadRuntime(), FakeDeafSender, [b"r"], Recorder(), settings)
    engine.start_closed(2)
    time.sleep(0.05)
    try:
        assert not engine.stop()  # says so instead of hanging or pretending
    finally:
        FakeDeafSender.release.set()


class FakeInterruptedStartRuntime(ThreadRuntime):
    """Fake: Ctrl-C lands while the third worker is being started, as a real SIGINT can inside Thread.start.

    ``started`` says whether that worker's thread got to run (the interrupt cut its start's wait
    short) or was only made; the fourth worker is never spawned.
    """

    def __init__(self, started: bool) -> None:
        self.started = started
        self.spawned = 0

    def spawn(self, target: Any, name: str, keep: Any) -> None:
        self.spawned += 1
        if self.spawned < 3:
            super().spawn(target, name, keep)
            return
        if self.started:
            super().spawn(target, name, keep)
        else:
            keep(threading.Thread(target=target, name=name, daemon=True))
        raise KeyboardInterrupt


@pytest.mark.parametrize("started", [True, False], ids=["thread-ran", "thread-made"])
def test_ctrl_c_while_workers_start_leaves_every_started_worker_joined(started: bool) -> None:
    server = FakeServer(0.0005)
    engine = _engine(server, Recorder(), FakeInterruptedStartRuntime(started), stop_timeout_s=5)
    with pytest.raises(KeyboardInterrupt):
        engine.start_closed(4)
    workers = list(engine._workers)
    assert engine.stop()  # a worker never spawned is no handle to join
    assert [worker.handle is not None for worker in workers] == [True, True, True, False]
    assert not any(worker.handle.is_alive() for worker in workers[:3])


def test_drain_gives_up_when_told_to() -> None:
    engine = LoadEngine(ThreadRuntime(), FakeHangingSender, [b"r"], Recorder(), EngineSettings(stop_timeout_s=5))
    engine.start_closed(2)
    time.sleep(0.05)
    try:
        started = time.monotonic()
        assert not engine.pause_and_drain(10, give_up=lambda: True)
        assert time.monotonic() - started < 1
    finally:
        engine.stop()


class FakeFuture:
    """Fake: a gRPC-like future the test completes when it likes (late, or never)."""

    def __init__(self) -> None:
        self._callbacks: list[Any] = []
        self._value: Any = None
        self.cancelled = False
        self.done = False

    def add_done_callback(self, callback: Any) -> None:
        self._callbacks.append(callback)
        if self.done:  # as grpc's futures do: a callback added after completion runs at once
            callback(self)

    def complete(self, value: Any) -> None:
        self._value, self.done = value, True
        for callback in self._callbacks:
            callback(self)

    def result(self, timeout: float | None = None) -> Any:
        return self._value

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class FakeFutureClient:
    """Fake: hands out futures; the first one is answered late, after its request timed out."""

    def __init__(self) -> None:
        self.futures: list[FakeFuture] = []

    def send_raw_future(self, request: Any) -> FakeFuture:
        future = FakeFuture()
        self.futures.append(future)
        if len(self.futures) > 1:
            future.complete(b"answer %d" % len(self.futures))
        return future

    def decode_raw(self, raw: Any) -> Any:
        return raw


def test_a_timed_out_future_counts_once_and_its_late_answer_completes_nothing() -> None:
    client = FakeFutureClient()
    sender = FutureSender(client, ThreadRuntime(), timeout_s=0.05, grace_s=0.0)
    first = sender.call(b"request")
    assert first.error == TIMEOUT and client.futures[0].cancelled
    client.futures[0].complete(b"late answer")  # arrives now, for the request given up on
    second = sender.call(b"request")
    assert second.error is None  # the next request got its own answer, not the stale one
    assert len(client.futures) == 2


class FakeConnection:
    """Fake: a connection whose answers cannot be decoded."""

    last_send_ns = 1234
    last_resent = False

    def send_raw(self, request: Any) -> bytes:
        return b"garbage"

    def decode_raw(self, raw: Any) -> Any:
        raise ValueError("output shorter than its shape")

    def close(self) -> None:
        pass


def test_a_failing_decode_is_an_error_of_that_request_only() -> None:
    sender = BlockingSender(FakeConnection(), decode=True)
    outcome = sender.call(b"request")
    assert outcome.error == "CLIENT ValueError" and "shorter" in outcome.reason
    assert BlockingSender(FakeConnection(), decode=False).call(b"request").error is None  # status only


def test_greenlet_workers_drain_exactly_too() -> None:
    """Greenlets share one thread: the same counter, the same exact drain."""
    import gevent

    class FakeCooperativeSender(Sender):
        def __init__(self) -> None:
            self.sent = 0

        def call(self, request: object) -> Outcome:
            gevent.sleep(0.0005)
            self.sent += 1
            return Outcome()

    senders: list[FakeCooperativeSender] = []

    def factory() -> Sender:
        senders.append(FakeCooperativeSender())
        return senders[-1]

    recorder = Recorder()
    engine = LoadEngine(GreenletRuntime(), factory, [b"r"], recorder)
    engine.start_closed(8)
    recorded = 0
    try:
        for _ in range(10):
            gevent.sleep(0.005)
            assert engine.pause_and_drain(5)
            recorded += recorder.rotate().completed
            assert recorded == sum(s.sent for s in senders)
            engine.resume()
    finally:
        engine.stop()
    assert recorded > 10


def _sweeper(server: FakeServer, **measure: Any) -> Sweeper:
    settings = MeasureSettings(**{"window_ms": 60, "stability": StabilityRule(2, 0.5), "max_trials": 6, **measure})
    return Sweeper(
        lambda: LocalLoad.build(ThreadRuntime(), lambda: FakeServerSender(server), [b"r"]),
        server,
        ["fake"],
        settings,
    )


def test_sweeper_windows_match_the_fake_servers_counts_and_stop_when_stable() -> None:
    server = FakeServer(0.001)
    seen: list[WindowRecord] = []
    sweeper = _sweeper(server)
    sweeper.on_window = lambda level, record: seen.append(record)
    result = sweeper.run_level("concurrency", 2)
    assert result.stable and 2 <= len(result.windows) <= 6
    assert seen == result.windows
    for window in result.windows:
        assert window.drained
        assert window.server["fake"].success_count == window.stats.completed


def test_an_unstable_level_runs_out_its_windows_and_says_so() -> None:
    server = FakeServer(0.001)
    sweeper = _sweeper(server, stability=StabilityRule(3, 1e-9), max_trials=3)
    result = sweeper.run_level("concurrency", 1)
    assert not result.stable and len(result.windows) == 3


def _fake_level(level: float, p99_us: int) -> LevelResult:
    """Fake: a measured level whose only window has the given p99 latency."""
    recorder = Recorder()
    recorder.current.slot(0).success(p99_us * 1000)
    stats = recorder.rotate()
    return LevelResult("concurrency", level, [WindowRecord(stats, {}, None, 0, True)], stable=True)


def test_binary_search_finds_the_highest_level_under_the_limit() -> None:
    measured: list[float] = []

    def measure(level: float) -> LevelResult:
        measured.append(level)
        return _fake_level(level, 100 * int(level))  # latency grows with load: 100 us per level

    levels = [float(c) for c in range(1, 33)]
    notes: list[str] = []
    list(search_levels(levels, measure, LatencyLimit("p99", 1250), binary=True, on_note=notes.append))
    assert measured[:2] == [1, 32]
    assert len(measured) <= 2 + 5  # log2(32) steps after the two bounds
    assert notes == ["highest concurrency under 1.25 ms: 12"]


def test_linear_search_stops_at_the_first_level_past_the_limit() -> None:
    measured: list[float] = []

    def measure(level: float) -> LevelResult:
        measured.append(level)
        return _fake_level(level, 100 * int(level))

    notes: list[str] = []
    list(search_levels([1, 2, 4, 8, 16], measure, LatencyLimit("p99", 500), on_note=notes.append))
    assert measured == [1, 2, 4, 8] and notes[0].startswith("stopping: p99 latency passed 0.5 ms")
    measured.clear()
    list(search_levels([1, 2, 4], measure))
    assert measured == [1, 2, 4]  # no limit: every level


class FakeAioStream:
    """Fake: a grpc.aio stream; answers each request by a script (silence, a stale answer first, ...)."""

    def __init__(self, script: list[str]) -> None:
        import asyncio

        self._script = script
        self._responses: asyncio.Queue = asyncio.Queue()
        self.cancelled = False

    async def write(self, payload: bytes) -> None:
        from perfprobe.client._proto import grpc_service_pb2 as pb

        request_id = pb.ModelInferRequest.FromString(payload).id
        how = self._script.pop(0)
        if how == "silent":
            return
        if how == "stale first":
            self._responses.put_nowait(pb.ModelStreamInferResponse(infer_response=pb.ModelInferResponse(id="old-1")))
        self._responses.put_nowait(pb.ModelStreamInferResponse(infer_response=pb.ModelInferResponse(id=request_id)))

    async def read(self) -> Any:
        return await self._responses.get()

    def cancel(self) -> None:
        self.cancelled = True


class FakeAioClient:
    """Fake: a client whose asyncio connection opens scripted streams."""

    supports_asyncio = True

    def __init__(self, scripts: list[list[str]]) -> None:
        self.scripts = scripts
        self.streams: list[FakeAioStream] = []

    def aio_connection(self) -> FakeAioClient:
        return self

    def open_stream(self) -> FakeAioStream:
        self.streams.append(FakeAioStream(self.scripts.pop(0)))
        return self.streams[-1]

    async def close(self) -> None:
        pass


def test_a_timed_out_stream_request_counts_once_and_its_stream_is_replaced() -> None:
    import asyncio

    from perfprobe.client.grpc_client import GrpcRequest
    from perfprobe.transport.kserve_grpc import AioStreamSender

    async def scenario() -> list[Any]:
        client = FakeAioClient([["silent"], ["stale first", "plain"]])
        sender = AioStreamSender(client, timeout_s=0.05)  # type: ignore[arg-type]
        request = GrpcRequest(b"", "fake")
        outcomes = [await sender.call(request) for _ in range(3)]
        await sender.close()
        return [outcomes, client.streams]

    (first, second, third), streams = asyncio.run(scenario())
    assert first.error == TIMEOUT and streams[0].cancelled  # the silent stream was given up
    assert second.error is None and second.dropped == 1  # the stale answer was not taken for it
    assert third.error is None and third.dropped == 0
    assert len(streams) == 2  # one replacement, then the new stream serves on


def _undrained_level(completed: int, seconds: float, server_success: int, read_lag_ms: float) -> LevelResult:
    """Fake: three open-loop windows (not drained) of 400 µs requests, the server's count beside them."""
    windows = []
    for _ in range(3):
        recorder = Recorder()
        slot = recorder.current.slot(0)
        for _ in range(completed):
            slot.success(400_000)
        stats = dataclasses.replace(recorder.rotate(), duration_ns=int(seconds * 1e9))
        delta = ServerDelta("fake", server_success, server_success, {"success": server_success}, {})
        windows.append(WindowRecord(stats, {"fake": delta}, None, 0, False, server_read_lag_ns=int(read_lag_ms * 1e6)))
    return LevelResult("rate", completed / seconds, windows, stable=True, target_model="fake")


@pytest.mark.parametrize(
    ("excess", "read_lag_ms", "warned"),
    [
        (0, 3.0, False),
        (3, 3.0, False),  # at 1,500/s, requests that completed in the 3 ms before the server was read
        (3, 0.0, True),  # read at once: a few more than in flight is another client's
        (150, 3.0, True),  # another client, plainly
    ],
)
def test_open_loop_boundaries_allow_for_requests_completed_before_the_server_was_read(
    excess: int, read_lag_ms: float, warned: bool
) -> None:
    level = _undrained_level(3000, 2.0, 3000 + excess, read_lag_ms)
    warnings = _foreign_load_warning(level)
    assert bool(warnings) == warned, warnings


def test_a_blocking_worker_runs_its_loop_in_one_step_and_refuses_one_that_suspends() -> None:
    import asyncio

    from perfprobe.load.runtime import drive, settled

    class FakeBlockingSender(Sender):
        def call(self, request: Any) -> Outcome:
            return Outcome(error=None if request == "ok" else "FAKE")

    async def loop() -> list[str | None]:
        call = FakeBlockingSender().call
        return [(await settled(call(request))).error for request in ("ok", "bad")]

    assert drive(loop()) == [None, "FAKE"]  # the same loop code an asyncio worker awaits

    async def suspends() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="suspends"):
        drive(suspends())
