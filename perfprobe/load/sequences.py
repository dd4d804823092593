"""Stateful sequence models: live sequences, each sending its steps in order under one correlation id.

A model with a sequence batcher keeps state per correlation id between a request flagged START
and one flagged END; a request of an id it does not know, without START, is refused. The feed
here hands each send a step of a live sequence: closed loop, one sequence per in-flight slot (a
new one starts when it ends); open loop, a pool of ``live`` sequences taken in turn.

Ordering rules keep the server's view of a sequence whole even when its steps overlap (open loop
without ``serial``): no step follows a START still in flight, and END waits until no other step
of its sequence is in flight; a slot's next sequence starts once its END is answered, so the
server never holds more than ``live`` sequences. A step that fails leaves its sequence broken:
the next step sent for it is its END, so the server frees whatever it holds for it. At a stop,
``finishing`` makes every started sequence send its END.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, replace

from perfprobe.errors import UsageError

FINISHED = object()  # ``take`` while finishing: this worker has nothing left to send


@dataclass(frozen=True)
class TraceStep:
    """One request of a trace that names its sequences: its id, flags and data item."""

    sequence_id: int | str
    start: bool
    end: bool
    item: int


@dataclass(frozen=True)
class SequenceSettings:
    """How sequences are made; plain data, so it travels to load processes."""

    length: int = 20
    length_variation_pct: float = 20.0
    length_from_data: bool = False  # each sequence as long as its data stream (a data file, no --sequence-length)
    id_start: int = 1
    id_end: int | None = None  # excluded; None: without bound
    serial: bool = False  # open loop: at most one request in flight per sequence
    live: int = 4  # open loop: sequences live at once (--num-of-sequences)
    string_ids: bool = False  # the model's correlation ids are strings
    streams: tuple[tuple[int, ...], ...] = ()  # data item indices, per data stream
    seed: int = 0
    part: int = 0  # this process's share of the id range: ids start + part, + parts, ...
    parts: int = 1
    trace_steps: tuple[TraceStep, ...] = ()  # a trace's own sequences: one step per trace request

    def share(self, part: int, parts: int, live: int) -> SequenceSettings:
        """The settings of load process ``part`` of ``parts``: its own ids, its share of the live sequences."""
        return replace(self, part=part, parts=parts, live=live, seed=self.seed + part)

    def id_capacity(self) -> int | None:
        """How many ids this process can hold live at once (None: unbounded)."""
        if self.id_end is None:
            return None
        return len(range(self.id_start + self.part, self.id_end, self.parts))

    def check_ids(self, live: int) -> None:
        """Refuse a range too small for the sequences live at once: ids would collide."""
        capacity = self.id_capacity()
        if capacity is not None and capacity < live:
            each = f" for each of {self.parts} load processes" if self.parts > 1 else ""
            raise UsageError(
                f"--sequence-id-range {self.id_start}:{self.id_end} holds {capacity} ids{each}, "
                f"fewer than the {live} sequences live at once: ids would collide"
            )


class SequenceIds:
    """Correlation ids from the range, in order, wrapping; never one still live."""

    def __init__(self, settings: SequenceSettings) -> None:
        self._first = settings.id_start + settings.part
        self._step = settings.parts
        self._end = settings.id_end
        self._next = self._first
        self.live: set[int] = set()

    def take(self) -> int:
        while True:
            candidate = self._next
            self._next += self._step
            if self._end is not None and self._next >= self._end:
                self._next = self._first
            if candidate not in self.live:  # the range holds more ids than live sequences (checked)
                self.live.add(candidate)
                return candidate

    def release(self, sequence_id: int) -> None:
        self.live.discard(sequence_id)


class Sequence:
    """One live sequence: its id, data stream, length and how far it got."""

    __slots__ = (
        "broken",
        "end_sent",
        "id",
        "in_flight",
        "lap",
        "length",
        "next_step",
        "start_pending",
        "started_ns",
        "stream",
    )

    def __init__(self, sequence_id: int | str, stream: tuple[int, ...], length: int) -> None:
        self.id = sequence_id
        self.stream = stream
        self.length = length
        self.next_step = 0
        self.in_flight = 0
        self.start_pending = False
        self.started_ns = 0
        self.broken = False
        self.end_sent = False
        self.lap = 0  # a looped trace's replay this sequence belongs to

    @property
    def started(self) -> bool:
        return self.next_step > 0

    def ready(self, serial: bool, ending: bool) -> bool:
        """Whether a step may be sent now (see the module docstring for the ordering rules)."""
        if self.end_sent or self.start_pending:
            return False
        if serial or ending or self.broken or self.next_step == self.length - 1:
            return self.in_flight == 0
        return True


@dataclass(frozen=True)
class Ticket:
    """One step to send: which data item, with which sequence parameters."""

    item: int
    parameters: dict[str, bool | int | str]
    sequence: Sequence
    start: bool
    end: bool


@dataclass(frozen=True)
class SequenceEnd:
    """A sequence that ended: completed (every step succeeded) with its latency, or failed."""

    ok: bool
    latency_ns: int = 0


class _Feed:
    """What both feeds share: the lock, the stop's ``finishing``, and how a step's outcome is settled."""

    def __init__(self) -> None:
        self.finishing = False
        self._lock = threading.Lock()

    def _release(self, sequence: Sequence) -> None:
        """The sequence ended: its id may be used again."""

    def settle(self, ticket: Ticket, error: str | None, sent_ns: int, done_ns: int) -> SequenceEnd | None:
        """Account one step's outcome; the sequence's end when this step ended it."""
        sequence = ticket.sequence
        with self._lock:
            sequence.in_flight -= 1
            if ticket.start:
                sequence.start_pending = False
                sequence.started_ns = sent_ns
            if error is not None:
                # its next step is its END: even a refused START may have left state behind (the
                # batcher took the sequence, the model refused the step), and a server that never
                # had it refuses the END too, which is counted like any refusal
                sequence.broken = True
            if not ticket.end:
                return None
            self._release(sequence)
            if sequence.broken:
                return SequenceEnd(False)
            return SequenceEnd(True, done_ns - sequence.started_ns)


def _parameters(sequence_id: int | str, start: bool, end: bool) -> dict[str, bool | int | str]:
    return {"sequence_id": sequence_id, "sequence_start": start, "sequence_end": end}


class SequenceFeed(_Feed):
    """Hands workers the steps of live sequences it makes itself, and settles their outcomes (thread-safe)."""

    def __init__(self, settings: SequenceSettings, closed: bool, slots: int) -> None:
        if not settings.streams:
            raise ValueError("a sequence feed needs at least one data stream")
        super().__init__()
        self.settings = settings
        self.closed = closed
        count = slots if closed else settings.live
        settings.check_ids(count)
        self._slots: list[Sequence | None] = [None] * count
        self._turn = 0  # open loop: the slot to try first
        self._ids = SequenceIds(settings)
        self._rng = random.Random(settings.seed)
        self._next_stream = settings.part % len(settings.streams)

    # ---- making sequences ------------------------------------------------------------------

    def _new_sequence(self) -> Sequence:
        streams = self.settings.streams
        stream = streams[self._next_stream]
        self._next_stream = (self._next_stream + 1) % len(streams)
        return Sequence(self._ids.take(), stream, self._length(stream))

    def _length(self, stream: tuple[int, ...]) -> int:
        settings = self.settings
        if settings.length_from_data:
            return len(stream)
        spread = settings.length * settings.length_variation_pct / 100
        low, high = max(1, round(settings.length - spread)), max(1, round(settings.length + spread))
        return self._rng.randint(low, high)

    def _ticket(self, sequence: Sequence) -> Ticket:
        step = sequence.next_step
        start = step == 0
        end = step >= sequence.length - 1 or sequence.broken or self.finishing
        sequence.next_step += 1
        sequence.in_flight += 1
        sequence.start_pending = start
        sequence.end_sent = end
        wire_id: int | str = str(sequence.id) if self.settings.string_ids else sequence.id
        return Ticket(
            sequence.stream[step % len(sequence.stream)], _parameters(wire_id, start, end), sequence, start, end
        )

    # ---- what workers call -------------------------------------------------------------------

    def take(self, worker: int, number: int | None = None) -> Ticket | object | None:
        """The next step for ``worker``: a ``Ticket``; None (wait and ask again); ``FINISHED``.

        ``number`` (the schedule's send number) does not matter here: this feed makes its own sequences.
        """
        with self._lock:
            if self.closed:
                return self._take_closed(worker)
            return self._take_open()

    def _take_closed(self, slot: int) -> Ticket | object | None:
        sequence = self._slots[slot]
        if sequence is None or sequence.end_sent:
            if self.finishing:
                return self._take_any_end()
            sequence = self._slots[slot] = self._new_sequence()
        elif self.finishing and not sequence.started:
            self._drop(slot, sequence)
            return self._take_any_end()
        return self._ticket(sequence) if sequence.ready(True, self.finishing) else None

    def _take_open(self) -> Ticket | object | None:
        count = len(self._slots)
        waiting = False
        for offset in range(count):
            slot = (self._turn + offset) % count
            sequence = self._slots[slot]
            if sequence is None or sequence.end_sent:
                if sequence is not None and sequence.in_flight > 0:
                    waiting = True  # its END is unanswered: a new START could overtake it on another connection
                    continue
                if self.finishing:
                    continue
                sequence = self._slots[slot] = self._new_sequence()
            elif self.finishing and not sequence.started:
                self._drop(slot, sequence)
                continue
            if sequence.ready(self.settings.serial, self.finishing):
                self._turn = (slot + 1) % count
                return self._ticket(sequence)
            waiting = True
        return None if waiting or not self.finishing else FINISHED

    def _take_any_end(self) -> Ticket | object | None:
        """Finishing: END for another slot's sequence (its worker may be gone: a signal ended it)."""
        waiting = False
        for sequence in self._slots:
            if sequence is None or sequence.end_sent or not sequence.started:
                continue
            if sequence.in_flight or sequence.start_pending:
                waiting = True
                continue
            return self._ticket(sequence)
        return None if waiting else FINISHED

    def _drop(self, slot: int, sequence: Sequence) -> None:
        """A sequence that never sent a step: nothing to end on the server."""
        self._slots[slot] = None
        self._ids.release(sequence.id)

    def _release(self, sequence: Sequence) -> None:
        self._ids.release(sequence.id)  # type: ignore[arg-type]


class TraceSequenceFeed(_Feed):
    """The sequences a trace names: each send is the trace's own step, with its id and flags.

    A sequence's steps go out one after another, each once the previous one is answered (a step
    that has to wait is sent late, and counted so): a trace's sequence is a session, whose order
    matters. A step of a later replay (``--trace-loop``) waits until its own START has gone out,
    and a START until the id's sequence of the previous replay has ended. A failed step's
    sequence gets END on its next step; the trace's later steps of it are still sent as they
    are, and the server refuses them (counted).
    """

    def __init__(self, settings: SequenceSettings) -> None:
        super().__init__()
        self.settings = settings
        self._steps = settings.trace_steps
        self._live: dict[int | str, Sequence] = {}
        self._ended: dict[int | str, int] = {}  # per id, the last replay whose sequence ended
        self._items: dict[int | str, tuple[int, ...]] = {}  # per id, the items of its steps in order
        positions = []  # per trace request, which step of its sequence it is
        for step in settings.trace_steps:
            positions.append(len(self._items.get(step.sequence_id, ())))
            self._items[step.sequence_id] = (*self._items.get(step.sequence_id, ()), step.item)
        self._positions = tuple(positions)

    def take(self, worker: int, number: int | None = None) -> Ticket | object | None:
        with self._lock:
            # finishing: END for every sequence left open. A send drawn before the finish (a worker
            # woken from its wait for it) is not sent: it could START a next replay's sequence, or
            # end one with a step of the replay that finishing has just ended
            if number is None or self.finishing:
                return self._take_finishing()
            lap, index = divmod(number, len(self._steps))
            step = self._steps[index]
            sequence = self._live.get(step.sequence_id)
            if step.start:
                if sequence is not None or self._ended.get(step.sequence_id, -1) != lap - 1:
                    return None  # the id's sequence of the previous replay has not ended yet
                sequence = Sequence(step.sequence_id, self._items[step.sequence_id], 0)
                sequence.lap = lap
                self._live[step.sequence_id] = sequence
            elif sequence is None or sequence.lap != lap:
                if self._ended.get(step.sequence_id, -1) < lap:
                    return None  # its own START has not gone out yet
                orphan = Sequence(step.sequence_id, (step.item,), 0)  # its sequence ended early (a failed step)
                orphan.in_flight = 1
                return Ticket(step.item, _parameters(step.sequence_id, False, step.end), orphan, False, False)
            if sequence.start_pending or sequence.in_flight or sequence.next_step != self._positions[index]:
                return None  # one step at a time, in the trace's order
            return self._ticket(sequence, step.item, step.start, step.end or sequence.broken)

    def _take_finishing(self) -> Ticket | object | None:
        waiting = False
        for sequence in self._live.values():
            if sequence.end_sent or sequence.start_pending or sequence.in_flight:
                waiting = True
                continue
            item = sequence.stream[sequence.next_step % len(sequence.stream)]  # the step it would have sent next
            return self._ticket(sequence, item, False, True)
        return None if waiting else FINISHED

    @staticmethod
    def _ticket(sequence: Sequence, item: int, start: bool, end: bool) -> Ticket:
        sequence.next_step += 1
        sequence.in_flight += 1
        sequence.start_pending = start
        sequence.end_sent = end
        return Ticket(item, _parameters(sequence.id, start, end), sequence, start, end)

    def _release(self, sequence: Sequence) -> None:
        if self._live.get(sequence.id) is sequence:
            del self._live[sequence.id]
            self._ended[sequence.id] = sequence.lap
