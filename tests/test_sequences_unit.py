"""Sequences without a server: ids, ordering of a sequence's steps, broken sequences, the END at a stop,
and the sequence parameters each protocol puts on a request already encoded."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from perfprobe.client import InferInput, RequestedOutput, make_client
from perfprobe.client.errors import TIMEOUT
from perfprobe.client.model import ModelDescription
from perfprobe.errors import UsageError
from perfprobe.load.sequences import (
    FINISHED,
    SequenceFeed,
    SequenceIds,
    SequenceSettings,
    Ticket,
    TraceSequenceFeed,
    TraceStep,
)
from perfprobe.runs.options import SweepOptions
from perfprobe.runs.plan import plan


def _settings(**changes) -> SequenceSettings:
    base = {"length": 3, "length_variation_pct": 0.0, "streams": ((0, 1, 2),)}
    return SequenceSettings(**{**base, **changes})


def _drive_closed(feed: SequenceFeed, worker: int) -> Ticket:
    ticket = feed.take(worker)
    assert isinstance(ticket, Ticket)
    return ticket


def test_ids_wrap_inside_the_range_and_skip_those_still_live() -> None:
    ids = SequenceIds(_settings(id_start=5, id_end=8))
    assert [ids.take(), ids.take(), ids.take()] == [5, 6, 7]
    ids.release(6)
    assert ids.take() == 6  # 5 and 7 are still live: the wrapped range yields 6 only
    ids.release(5)
    assert ids.take() == 5


def test_load_processes_get_disjoint_ids() -> None:
    taken = []
    for part in range(3):
        ids = SequenceIds(_settings(id_start=10, id_end=22).share(part, 3, 2))
        taken.append({ids.take() for _ in range(4)})
    assert sum(len(t) for t in taken) == 12 and len(set().union(*taken)) == 12
    assert all(10 <= i < 22 for t in taken for i in t)


def test_a_range_smaller_than_the_live_sequences_is_refused() -> None:
    with pytest.raises(UsageError, match="ids would collide"):
        plan(SweepOptions(model="m", concurrency="1:8", sequence_id_range="1:5"))
    with pytest.raises(UsageError, match="ids would collide"):
        plan(SweepOptions(model="m", request_rate="10", num_of_sequences=6, sequence_id_range="100:103"))
    for bad in ("0:5", "9:3", "a:b"):
        with pytest.raises(UsageError, match="sequence-id-range"):
            plan(SweepOptions(model="m", sequence_id_range=bad))


def test_closed_loop_sends_start_steps_end_then_a_new_sequence() -> None:
    feed = SequenceFeed(_settings(), closed=True, slots=2)
    seen = []
    for _ in range(6):
        ticket = _drive_closed(feed, 0)
        seen.append((ticket.parameters["sequence_id"], ticket.start, ticket.end, ticket.item))
        ended = feed.settle(ticket, None, 100, 250)
        assert (ended is not None) == ticket.end
    assert seen == [(1, True, False, 0), (1, False, False, 1), (1, False, True, 2)] + [
        (2, True, False, 0),
        (2, False, False, 1),
        (2, False, True, 2),
    ]


def test_sequence_latency_runs_from_the_first_send_to_the_last_answer() -> None:
    feed = SequenceFeed(_settings(length=2), closed=True, slots=1)
    first = _drive_closed(feed, 0)
    feed.settle(first, None, 1_000, 2_000)
    last = _drive_closed(feed, 0)
    ended = feed.settle(last, None, 3_000, 7_500)
    assert ended is not None and ended.ok and ended.latency_ns == 6_500


def test_lengths_vary_within_the_percentage() -> None:
    feed = SequenceFeed(_settings(length=10, length_variation_pct=20.0), closed=True, slots=1)
    lengths = {feed._new_sequence().length for _ in range(400)}
    assert lengths == set(range(8, 13))


def test_open_loop_never_sends_a_step_behind_an_unanswered_start_or_an_end_before_the_rest() -> None:
    feed = SequenceFeed(_settings(live=1), closed=False, slots=8)
    start = feed.take(0)
    assert isinstance(start, Ticket) and start.start
    assert feed.take(1) is None  # the START is still in flight
    feed.settle(start, None, 0, 1)
    middle = feed.take(1)
    assert isinstance(middle, Ticket) and not middle.end
    assert feed.take(2) is None  # the next step is END: it waits for the middle one
    feed.settle(middle, None, 2, 3)
    end = feed.take(2)
    assert isinstance(end, Ticket) and end.end
    assert feed.take(3) is None  # the slot's next START could overtake the END on another connection
    feed.settle(end, None, 4, 5)
    following = feed.take(3)
    assert isinstance(following, Ticket) and following.start
    assert following.parameters["sequence_id"] != end.parameters["sequence_id"]


def test_serial_sequences_keep_one_request_in_flight_per_sequence() -> None:
    feed = SequenceFeed(_settings(live=2, length=5, serial=True), closed=False, slots=8)
    tickets = [feed.take(w) for w in range(3)]
    assert isinstance(tickets[0], Ticket) and isinstance(tickets[1], Ticket) and tickets[2] is None
    assert tickets[0].parameters["sequence_id"] != tickets[1].parameters["sequence_id"]


def test_a_failed_step_makes_the_next_one_end_its_sequence() -> None:
    feed = SequenceFeed(_settings(length=5), closed=True, slots=1)
    feed.settle(_drive_closed(feed, 0), None, 0, 1)
    assert feed.settle(_drive_closed(feed, 0), "HTTP 400", 2, 3) is None
    closing = _drive_closed(feed, 0)
    assert closing.end and closing.parameters["sequence_id"] == 1  # the server frees what it holds
    ended = feed.settle(closing, None, 4, 5)
    assert ended is not None and not ended.ok
    assert _drive_closed(feed, 0).parameters["sequence_id"] == 2


@pytest.mark.parametrize("error", ["HTTP 400", TIMEOUT])
def test_a_failed_start_is_ended_too(error: str) -> None:
    feed = SequenceFeed(_settings(), closed=True, slots=1)
    assert feed.settle(_drive_closed(feed, 0), error, 0, 1) is None  # the server may hold it either way
    closing = _drive_closed(feed, 0)
    assert closing.end and closing.parameters["sequence_id"] == 1
    ended = feed.settle(closing, "HTTP 400", 2, 3)  # a server that never had it refuses the END: counted
    assert ended is not None and not ended.ok
    assert _drive_closed(feed, 0).parameters["sequence_id"] == 2


@pytest.mark.parametrize("closed", [True, False])
def test_finishing_ends_every_started_sequence_then_says_finished(closed: bool) -> None:
    feed = SequenceFeed(_settings(length=10, live=3), closed=closed, slots=3)
    started = [feed.take(w) for w in range(3)]
    for ticket in started:
        assert isinstance(ticket, Ticket)
        feed.settle(ticket, None, 0, 1)
    feed.finishing = True
    ends = []
    for worker in range(3):
        ticket = feed.take(worker)
        assert isinstance(ticket, Ticket) and ticket.end
        ends.append(ticket)
    assert {t.parameters["sequence_id"] for t in ends} == {t.parameters["sequence_id"] for t in started}
    if not closed:
        assert feed.take(0) is None  # the ENDs are in flight: wait for them
    for ticket in ends:
        feed.settle(ticket, None, 2, 3)
    assert all(feed.take(w) is FINISHED for w in range(3))


def test_string_ids_go_out_as_strings() -> None:
    feed = SequenceFeed(_settings(string_ids=True, id_start=42), closed=True, slots=1)
    assert _drive_closed(feed, 0).parameters["sequence_id"] == "42"


def test_a_string_corrid_control_is_detected_from_the_config() -> None:
    control = {"kind": "CONTROL_SEQUENCE_CORRID", "data_type": "TYPE_STRING"}
    config = {"name": "m", "sequence_batching": {"control_input": [{"name": "CORRID", "control": [control]}]}}
    model = ModelDescription.from_dicts({"name": "m"}, config)
    assert model.sequence_batching and model.string_correlation_ids
    plain = ModelDescription.from_dicts({"name": "m"}, {"name": "m", "sequence_batching": {}})
    assert plain.sequence_batching and not plain.string_correlation_ids


@pytest.mark.parametrize("sequence_id", [7, "abc"])
def test_sequence_parameters_are_added_to_an_encoded_request_on_both_protocols(sequence_id: int | str) -> None:
    from perfprobe.client._proto import grpc_service_pb2 as pb

    data = np.arange(4, dtype=np.int32)
    inputs = [InferInput("VALUE", data, "INT32", shape=[4])]
    outputs = [RequestedOutput("SUM")]
    parameters = {"sequence_id": sequence_id, "sequence_start": True, "sequence_end": False}
    with make_client("http", "127.0.0.1:1") as http:
        request = http.with_parameters(http.build_request("m", inputs, outputs), parameters)
        length = int(request.headers["Inference-Header-Content-Length"])
        header = json.loads(request.body[:length])
        assert header["parameters"] == parameters
        assert request.body[length:] == data.tobytes()
        assert request.wire.endswith(request.body) and f"Content-Length: {len(request.body)}".encode() in request.wire
    with make_client("grpc", "127.0.0.1:1") as grpc_client:
        request = grpc_client.with_parameters(grpc_client.build_request("m", inputs, outputs), parameters)
        decoded = pb.ModelInferRequest.FromString(request.payload)
        assert decoded.parameters["sequence_start"].bool_param is True
        assert decoded.parameters["sequence_end"].bool_param is False
        if isinstance(sequence_id, str):
            assert decoded.parameters["sequence_id"].string_param == sequence_id
        else:
            assert decoded.parameters["sequence_id"].int64_param == sequence_id
        assert decoded.raw_input_contents[0] == data.tobytes()


def _trace_steps(ids: tuple[int, ...], length: int) -> tuple[TraceStep, ...]:
    """Interleaved sequences: step k of every id, then step k + 1; item = the request's position."""
    return tuple(
        TraceStep(sequence_id, step == 0, step == length - 1, step * len(ids) + offset)
        for step in range(length)
        for offset, sequence_id in enumerate(ids)
    )


@pytest.mark.parametrize("seed", range(40))
def test_a_traces_sequences_reach_the_server_whole_and_in_order_whatever_the_workers_timing(seed: int) -> None:
    """Workers draw sends in order but take and finish them in any order (three replays of the trace)."""
    rng = random.Random(seed)
    steps = _trace_steps((7, 8, 9), 4)
    feed = TraceSequenceFeed(SequenceSettings(trace_steps=steps))
    undrawn, drawn, in_flight = list(range(3 * len(steps))), [], []
    server: dict[int, list[int]] = {}  # what the server holds, as the requests arrive
    ended = []
    while undrawn or drawn or in_flight:
        choice = rng.random()
        if undrawn and len(drawn) < 6 and (choice < 0.3 or not (drawn or in_flight)):
            drawn.append(undrawn.pop(0))
        elif drawn and choice < 0.7:
            number = rng.choice(drawn)
            ticket = feed.take(0, number)
            if isinstance(ticket, Ticket):
                drawn.remove(number)
                sequence_id = ticket.parameters["sequence_id"]
                if ticket.start:
                    assert sequence_id not in server  # never a START for a sequence still open
                    server[sequence_id] = []
                server[sequence_id].append(ticket.item)  # KeyError: a step without its START
                if ticket.end:
                    ended.append(server.pop(sequence_id))
                in_flight.append(ticket)
        elif in_flight:
            feed.settle(in_flight.pop(rng.randrange(len(in_flight))), None, 0, 1)
    assert not server and len(ended) == 9
    assert all(sequence == sorted(sequence) and len(sequence) == 4 for sequence in ended)  # whole, in order


def test_finishing_ends_the_sequence_of_a_worker_that_is_gone() -> None:
    feed = SequenceFeed(_settings(length=10), closed=True, slots=2)
    for worker in (0, 1):
        feed.settle(_drive_closed(feed, worker), None, 0, 1)
    feed.finishing = True  # worker 1 was ended by a signal: worker 0 ends both sequences
    ends = [_drive_closed(feed, 0), _drive_closed(feed, 0)]
    assert all(t.end for t in ends) and {t.parameters["sequence_id"] for t in ends} == {1, 2}
    for ticket in ends:
        feed.settle(ticket, None, 2, 3)
    assert feed.take(0) is FINISHED


def test_finishing_sends_no_step_a_worker_drew_before_it() -> None:
    """Workers woken by the finish hold sends drawn before it: none may start or end a sequence by them.

    Here replay 0's sequence 7 is live after its START; the finish ends it (END with its next step),
    and then one worker holds replay 1's START of 7 and another replay 0's last step of 7. Sent,
    they would open a new 7 and close it with the old replay's step: the server would see [1, 4].
    """
    steps = _trace_steps((7,), 4)
    feed = TraceSequenceFeed(SequenceSettings(trace_steps=steps))
    start = feed.take(0, 0)
    assert isinstance(start, Ticket) and start.start
    feed.settle(start, None, 0, 1)
    feed.finishing = True
    end = feed.take(1, None)
    assert isinstance(end, Ticket) and end.end and end.item == steps[1].item
    feed.settle(end, None, 1, 2)
    for stale in (len(steps), 3):  # replay 1's START of 7; replay 0's last step of 7
        assert feed.take(2, stale) is FINISHED
