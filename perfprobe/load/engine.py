"""Closed-loop and open-loop load on a pool of workers, recording into the measurement windows.

Closed loop (concurrency N): N requests in flight at all times. At a window boundary the
controller may pause the workers and wait for the requests in flight to finish, so the
server's counters and ours describe exactly the same requests (``drain``).

Open loop (request rate): workers draw intended send times from one precomputed schedule;
latency is recorded both from the intended time and from the actual send, with late
sends counted, so a client that cannot keep up is visible in the results.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from perfprobe.client.errors import CONNECTION_FAILURES
from perfprobe.load.pacing import COARSE_TIMER_LATENESS_NS, Pacer
from perfprobe.load.runtime import Runtime, settled
from perfprobe.load.schedule import Schedule
from perfprobe.load.sequences import FINISHED, SequenceEnd, SequenceFeed, SequenceSettings, Ticket, TraceSequenceFeed
from perfprobe.measure.goodput import Goodput
from perfprobe.measure.window import Recorder, WindowSlot
from perfprobe.transport.base import STOPPED, Outcome, Sender, failed

_now = time.perf_counter_ns
REPLAYED = (-1, -1)  # ``_due``: the schedule has no sends left (a trace replayed once); compared by identity
SendCall = Callable[[Any], Any]  # a worker's sender's ``call``: an Outcome, or (asyncio) an awaitable of one
WorkerLoop = Callable[["_Worker", SendCall, Any], Awaitable[None]]  # worker, its send call, its recording key


@dataclass(frozen=True)
class EngineSettings:
    late_threshold_ns: int = 1_000_000  # an open-loop send this far behind schedule is "late"
    idle_poll_s: float = 0.0002  # how often a paused worker looks again
    spin_ns: int = 0  # open loop: the last stretch before a send is yielded through, not slept (pacing.py)
    wait_slice_ns: int = 1_000_000_000  # open loop: longest single sleep before a send (a stop wakes it anyway)
    stop_timeout_s: float = 30.0
    ready_timeout_s: float = 10.0  # open loop: how long the schedule waits for workers' connections
    record_requests: bool = False  # keep every request's times and outcome (``--export-requests``)
    goodput: Goodput | None = None  # the limits a good request stays under (``--goodput``)


@dataclass(frozen=True)
class SequencePlan:
    """How a stateful model's sequences are made, and how a prepared request gets a sequence's parameters."""

    settings: SequenceSettings
    with_parameters: Callable[[Any, dict[str, Any]], Any]


class _Worker:
    __slots__ = ("handle", "index", "pacer", "sender", "ticket")

    def __init__(self, index: int) -> None:
        self.index = index
        self.handle: Any = None
        self.pacer: Pacer | None = None  # open loop: made by the loop that waits for send instants
        self.sender: Sender | None = None
        self.ticket: Ticket | None = None  # a sequence step in flight

    def keep(self, handle: Any) -> None:
        self.handle = handle


class InFlight:
    """Requests in flight, counted under one lock with the pause flag.

    A worker takes a slot only while not paused, in the same locked step that reads the flag,
    so once ``pause`` returns no new request can start, and the count falls to zero exactly when
    the last request of the window is recorded: server and client describe the same requests.
    The lock is never held across a send, so greenlets sharing a thread cannot deadlock on it.
    """

    __slots__ = ("_count", "_lock", "paused")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self.paused = False

    def enter(self) -> bool:
        """Take a slot for one request; False (nothing taken) while paused."""
        with self._lock:
            if self.paused:
                return False
            self._count += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._count -= 1

    def pause(self) -> None:
        with self._lock:
            self.paused = True

    def resume(self) -> None:
        with self._lock:
            self.paused = False

    @property
    def count(self) -> int:
        return self._count


class LoadEngine:
    """Runs workers until stopped; the sweeper opens and closes measurement windows around it."""

    def __init__(
        self,
        runtime: Runtime,
        sender_factory: Callable[[], Sender],
        requests: list[Any],
        recorder: Recorder,
        settings: EngineSettings | None = None,
        per_worker_requests: list[list[Any]] | None = None,
        sequences: SequencePlan | None = None,
        send_items: tuple[int, ...] = (),
    ) -> None:
        if not requests and not per_worker_requests:
            raise ValueError("no prepared requests to send")
        self.send_items = send_items  # open loop: the data item of each of the schedule's sends (a trace's)
        self.sequences = sequences  # a stateful model: requests are steps of live sequences
        self._feed: SequenceFeed | TraceSequenceFeed | None = None
        self._finishing = False
        self._ready = InFlight()
        self.per_worker_requests = per_worker_requests  # e.g. each worker's own output region
        self.runtime = runtime
        self.sender_factory = sender_factory
        self.requests = requests
        self.recorder = recorder
        self.settings = settings or EngineSettings()
        self._workers: list[_Worker] = []
        self._stopping = False
        self._in_flight = InFlight()
        self._schedule: Schedule | None = None
        self._schedule_start_ns = 0
        self.worker_failures: list[str] = []  # workers that ended while the load was meant to run
        self.connection_failures = 0  # requests that found no server (the sweeper then checks it is alive)
        self.interrupted = False  # a worker caught Ctrl-C / SIGTERM

    # ---- recording ----------------------------------------------------------------------

    def _record(self, key: Any, sent_ns: int, done_ns: int, outcome: Outcome, intended_ns: int | None) -> None:
        slot = self.recorder.current.slot(key)
        if slot.requests is not None:
            slot.requests.append((sent_ns, done_ns, intended_ns, outcome.error))
        if outcome.resent or outcome.dropped:
            slot.irregular(outcome.resent, outcome.dropped)
        if outcome.error is not None:
            slot.failure(outcome.error, outcome.reason)
            if outcome.error in CONNECTION_FAILURES:
                self.connection_failures += 1
            return
        latency = done_ns - sent_ns
        slot.success(latency, outcome.send_ns, outcome.recv_ns)
        if intended_ns is not None:
            lag = sent_ns - intended_ns
            slot.scheduled(done_ns - intended_ns, max(lag, 0), lag > self.settings.late_threshold_ns)
        first_ns, inter_token_ns = self._record_stream(slot, outcome, sent_ns)
        goodput = self.settings.goodput
        if goodput is not None and goodput.met(latency, first_ns, inter_token_ns):
            slot.good += 1

    @staticmethod
    def _record_stream(slot: WindowSlot, outcome: Outcome, sent_ns: int) -> tuple[int | None, int | None]:
        """A streamed or generated answer's figures: its first response, the gaps, its tokens.

        Returns the time to its first response and its inter-token latency (None where it has none).
        Tokens are the transport's count (a tokenizer), else one per streamed response with output.
        """
        first_ns = inter_token_ns = None
        responses = outcome.responses
        if responses:
            times = [response.arrival_ns for response in responses]
            first_ns = times[0] - sent_ns
            slot.streamed(first_ns, [b - a for a, b in itertools.pairwise(times)], len(times))
        tokens = outcome.output_tokens if outcome.output_tokens is not None else len(responses) or None
        if tokens is not None:
            if len(responses) > 1 and tokens > 1:  # AIPerf's definition: (last - first) / (tokens - 1)
                inter_token_ns = (responses[-1].arrival_ns - responses[0].arrival_ns) // (tokens - 1)
            slot.tokens(tokens, inter_token_ns)
        return first_ns, inter_token_ns

    # ---- worker loops ---------------------------------------------------------------------

    def _requests_of(self, worker: _Worker) -> list[Any]:
        if self.per_worker_requests is not None:
            return self.per_worker_requests[worker.index]
        return self.requests

    # Every worker loop below is written once, as a coroutine. On the asyncio runtime it runs on
    # the event loop and its awaits suspend; on thread and greenlet workers ``runtime.start_worker``
    # drives it to the end in one step, because everything it awaits there (the sender's call, the
    # runtime's ``nap``, the pacer's wait) blocks its thread or greenlet instead of suspending.

    async def _send_one(self, call: SendCall, key: Any, request: Any, intended: int | None) -> tuple[Outcome, int, int]:
        """Send one request and record it, whatever happens: no failure of one request ends a worker.

        Returns the outcome with the send's start and end (perf_counter_ns), as recorded.
        """
        sent = _now()
        try:
            outcome = call(request)
            if not isinstance(outcome, Outcome):  # a coroutine sender's call (asyncio workers): awaited
                outcome = await outcome
        except Exception as exc:  # a sender bug or an unforeseen client failure: an error, counted
            outcome = failed(exc)
        done = _now()
        self._record(key, sent, done, outcome, intended)
        return outcome, sent, done

    async def _worker_life(self, worker: _Worker, loop: WorkerLoop) -> None:
        """A worker's life: its sender, its loop, and a loud record if it ends before ``stop``."""
        sender: Sender | None = None
        try:
            sender = worker.sender = self.sender_factory()  # made where the worker runs (its event loop)
            self._ready.leave()  # counted down: this worker can send
            await loop(worker, sender.call, self.runtime.identity())
        except BaseException as exc:  # noqa: BLE001 — recorded, never silently lost
            self._ended_by(worker, exc)
        else:
            self._ended_by(worker, None)
        finally:
            if sender is not None:
                await settled(sender.close())
            if worker.pacer is not None:
                worker.pacer.close()

    def _ended_by(self, worker: _Worker, exc: BaseException | None) -> None:
        """Record why a worker's loop ended; re-raise what is not ours to keep (SystemExit)."""
        if isinstance(exc, KeyboardInterrupt):
            # Ctrl-C / SIGTERM raised in this worker (greenlets share the main thread): the
            # controller re-raises it where the run can stop cleanly
            self.interrupted = True
            if worker.ticket is not None and self._feed is not None:  # its step will never be answered here
                self._feed.settle(worker.ticket, STOPPED, _now(), _now())  # so another worker sends the END
                worker.ticket = None
            return
        if exc is None:
            if not self._stopping and not self._finishing and not self.interrupted:
                self.worker_failures.append(f"worker {worker.index} ended before the load stopped")
            return
        if not self._stopping:
            self.worker_failures.append(f"worker {worker.index}: {type(exc).__name__}: {exc}")
        if not isinstance(exc, Exception):
            raise exc

    async def _closed_loop(self, worker: _Worker, call: SendCall, key: Any) -> None:
        requests = self._requests_of(worker)
        count = len(requests)
        position = worker.index % count
        nap, poll = self.runtime.nap, self.settings.idle_poll_s
        in_flight = self._in_flight
        while not self._stopping:
            if not in_flight.enter():  # paused: a window boundary is being drained
                await nap(poll)
                continue
            try:
                await self._send_one(call, key, requests[position], None)
            finally:
                in_flight.leave()
            position = position + 1 if position + 1 < count else 0

    async def _until_schedule_starts(self) -> None:
        """Open loop: wait until every worker is ready and the schedule has its start."""
        nap, poll = self.runtime.nap, self.settings.idle_poll_s
        while not self._schedule_start_ns and not self._stopping:
            await nap(poll)

    async def _open_loop(self, worker: _Worker, call: SendCall, key: Any) -> None:
        requests = self._requests_of(worker)
        count = len(requests)
        schedule = self._schedule
        assert schedule is not None
        item_of, nap = self._item_of, self.runtime.nap
        pacer = worker.pacer = self.runtime.pacer()
        await self._until_schedule_starts()
        while not self._stopping:
            send = schedule.next_send()
            if send is None:  # a trace replayed to its end: nothing left to send at this level
                while not self._stopping:
                    await nap(0.01)
                break
            intended = self._schedule_start_ns + send[0]
            await self._wait_until_due(pacer, intended)
            if self._stopping:
                break
            if not self._in_flight.enter():  # open loop is never paused; counted alike for stop
                schedule.answer()
                continue
            try:
                await self._send_one(call, key, requests[item_of(send[1], count)], intended)
            finally:
                self._in_flight.leave()
                schedule.answer()

    # ---- sequence workers (stateful models): steps of live sequences, closed or open loop ----

    def _record_sequence(self, key: Any, ended: SequenceEnd) -> None:
        slot = self.recorder.current.slot(key)
        if ended.ok:
            slot.sequence_completed(ended.latency_ns)
        else:
            slot.sequence_failed()

    def _take_step(self, worker: _Worker, due: tuple[int, int] | None) -> Ticket | object | None:
        """A step for ``worker`` with its in-flight slot taken; None (wait, ask again) or ``FINISHED`` without."""
        if not self._in_flight.enter():  # paused: a window boundary is being drained
            return None
        assert self._feed is not None
        ticket = self._feed.take(worker.index, due[1] if due is not None else None)
        if not isinstance(ticket, Ticket):  # every sequence has a step in flight the next must wait for
            self._in_flight.leave()
        worker.ticket = ticket if isinstance(ticket, Ticket) else None
        return ticket

    async def _make_step(self, worker: _Worker, call: SendCall, key: Any, request: Any, intended: int | None) -> None:
        """Send a step as a request and record it, and its sequence when the step ended one."""
        ticket = worker.ticket
        assert ticket is not None and self._feed is not None
        outcome, sent, done = await self._send_one(call, key, request, intended)
        ended = self._feed.settle(ticket, outcome.error, sent, done)
        worker.ticket = None
        if ended is not None:
            self._record_sequence(key, ended)

    def _step_over(self, due: tuple[int, int] | None) -> None:
        """Whatever happened to the step: its in-flight slot back, and its scheduled send answered."""
        self._in_flight.leave()
        if due is not None:
            self._schedule.answer()  # type: ignore[union-attr]

    def _step_request(self, requests: list[Any], ticket: Ticket) -> Any:
        assert self.sequences is not None
        return self.sequences.with_parameters(requests[ticket.item], ticket.parameters)

    def _due(self, due: tuple[int, int] | None) -> tuple[int, int] | None:
        """Open loop: (intended time, number) of the next send, kept while no sequence can take it.

        ``REPLAYED`` when the schedule (a trace) has no sends left; None in closed loop or while finishing.
        """
        if self._schedule is None or self._finishing:
            return None
        if due is None:
            send = self._schedule.next_send()
            if send is None:
                return REPLAYED
            due = (self._schedule_start_ns + send[0], send[1])
        return due

    def _item_of(self, number: int, count: int) -> int:
        """The data item of the schedule's send ``number``: a trace entry's own, or the next in turn."""
        items = self.send_items
        return items[number % len(items)] if items else number % count

    async def _sequence_loop(self, worker: _Worker, call: SendCall, key: Any) -> None:
        requests = self._requests_of(worker)
        nap, poll = self.runtime.nap, self.settings.idle_poll_s
        pacer = worker.pacer = self.runtime.pacer() if self._schedule is not None else None
        due: tuple[int, int] | None = None
        if self._schedule is not None:
            await self._until_schedule_starts()
        while not self._stopping:
            due = self._due(due)
            if due is REPLAYED:  # idle until the level ends (or its live sequences are finished)
                await nap(0.01)
                due = None
                continue
            intended = due[0] if due is not None else None
            if intended is not None and pacer is not None:
                await self._wait_until_due(pacer, intended)
                if self._stopping:  # woken by the stop: the step it waited for is not sent
                    break
            ticket = self._take_step(worker, due)
            if not isinstance(ticket, Ticket):
                if ticket is FINISHED:
                    return
                await nap(poll)
                continue
            try:
                await self._make_step(worker, call, key, self._step_request(requests, ticket), intended)
            finally:
                self._step_over(due)
            due = None

    def _spin_ns(self, pacer: Pacer) -> int:
        return self.settings.spin_ns if pacer.precise else max(self.settings.spin_ns, COARSE_TIMER_LATENESS_NS)

    async def _wait_until_due(self, pacer: Pacer, intended: int) -> None:
        """Sleep until ``spin_ns`` before ``intended`` (a stop wakes the pacer), then yield until it."""
        spin, slice_ns, nap = self._spin_ns(pacer), self.settings.wait_slice_ns, self.runtime.nap
        while intended - _now() > spin and not self._halting():
            await settled(pacer.wait_until(min(intended - spin, _now() + slice_ns)))
        while _now() < intended and not self._halting():
            await nap(0)

    def _halting(self) -> bool:
        return self._stopping or self._finishing

    # ---- control ------------------------------------------------------------------------------

    def start_closed(self, concurrency: int) -> None:
        """N workers, each with one request in flight (a stateful model's: one live sequence each)."""
        if self.sequences is not None:
            self._feed = SequenceFeed(self.sequences.settings, closed=True, slots=concurrency)
            self._start(concurrency, self._sequence_loop)
            return
        self._start(concurrency, self._closed_loop)

    def start_open(self, schedule: Schedule, max_inflight: int, start_ns: int | None = None) -> None:
        """Workers following ``schedule`` from ``start_ns`` (perf_counter_ns; by default once they are ready).

        At most ``max_inflight`` requests in flight. The schedule starts only when every worker has
        its connection (or after ``ready_timeout_s``), so the first sends are not late for that.
        """
        self._schedule = schedule
        self._schedule_start_ns = 0  # workers wait for it
        if self.sequences is not None:
            settings = self.sequences.settings
            self._feed = (
                TraceSequenceFeed(settings) if settings.trace_steps else SequenceFeed(settings, False, max_inflight)
            )
            self._start(max_inflight, self._sequence_loop)
        else:
            self._start(max_inflight, self._open_loop)
        deadline = time.monotonic() + self.settings.ready_timeout_s
        while self._ready.count and time.monotonic() < deadline and not self.worker_failures:
            self.runtime.sleep(self.settings.idle_poll_s)
        self._schedule_start_ns = start_ns if start_ns is not None else _now() + 2_000_000

    def _start(self, count: int, loop: WorkerLoop) -> None:
        self._stopping = False
        self._finishing = False
        self._in_flight = InFlight()
        self._ready = InFlight()  # counts the workers still making their connection
        for _ in range(count):
            self._ready.enter()
        self._workers = [_Worker(index) for index in range(count)]
        for worker in self._workers:
            life = functools.partial(self._worker_life, worker, loop)
            self.runtime.start_worker(life, f"perfprobe-worker-{worker.index}", worker.keep)

    def in_flight(self) -> int:
        return self._in_flight.count

    def replay_end_ns(self) -> int | None:
        """When a schedule with an end (a trace) had its last send recorded; None while it goes on."""
        schedule = self._schedule
        return schedule.last_answer_ns if schedule is not None and schedule.replayed else None

    def schedule_progress(self) -> tuple[int, bool]:
        """Open loop: the schedule's sends made so far, and whether it has no more (a trace replayed)."""
        schedule = self._schedule
        return (schedule.answered, schedule.replayed) if schedule is not None else (0, False)

    def pause(self) -> None:
        """Stop issuing new requests (until ``resume``)."""
        self._in_flight.pause()

    def pause_and_drain(self, timeout_s: float, give_up: Callable[[], bool] = lambda: False) -> bool:
        """Stop issuing new requests and wait for those in flight; False if some never came back.

        ``give_up`` is asked now and then: True ends the wait at once (the server is gone).
        """
        self.pause()
        deadline = time.monotonic() + timeout_s
        while self.in_flight() and time.monotonic() < deadline and not give_up():
            self.runtime.sleep(self.settings.idle_poll_s)
        return self.in_flight() == 0

    def resume(self) -> None:
        self._in_flight.resume()

    def finish_sequences(self, timeout_s: float) -> bool:
        """Send END for every sequence started and not ended, then let the workers end; False if some did not.

        Called before ``stop`` when the server is still there (after Ctrl-C too, briefly), so it
        holds no state of ours after the run. Steps sent now are recorded in the window that is
        open (never a reported one).
        """
        if self._feed is None or self._stopping:
            return True
        self._feed.finishing = True
        self._finishing = True
        self._in_flight.resume()
        for worker in self._workers:  # no more scheduled steps: a worker waiting for one sends ENDs instead
            if worker.pacer is not None:
                worker.pacer.wake()
        deadline = time.monotonic() + timeout_s
        finished = True
        for worker in self._workers:
            remaining = max(deadline - time.monotonic(), 0.01)
            finished = self.runtime.join(worker.handle, remaining) and finished
        return finished

    def stop(self) -> bool:
        """Stop every worker; False if some did not finish within the stop timeout."""
        self._stopping = True
        self._in_flight.resume()
        for worker in self._workers:
            if worker.pacer is not None:  # asleep until a send far ahead
                worker.pacer.wake()
            if worker.sender is not None:
                worker.sender.abort()
            self.runtime.interrupt(worker.handle)
        deadline = time.monotonic() + self.settings.stop_timeout_s
        finished = True
        for worker in self._workers:
            remaining = max(deadline - time.monotonic(), 0.01)
            finished = self.runtime.join(worker.handle, remaining) and finished
        self._workers = []
        return finished
