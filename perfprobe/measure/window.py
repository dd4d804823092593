"""Per-window recording of completed requests, one slot per worker, merged when a window closes.

A request belongs to the window in which it completes. Each thread records into its own
slot (greenlets of one thread share that thread's slot: they never interleave inside one
record call), so no lock is taken on the hot path; the controller swaps ``Recorder.current``
to open the next window and merges the old one.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from perfprobe.measure.histogram import HistogramLimits, LatencyHistogram

REASONS_KEPT = 5  # distinct server error messages kept per window (and per level)

# one request, for ``--export-requests``: its send and its end (wall-clock ns), its intended send
# time (open loop), its error code (None: success), its model (several at once) and load process
RequestRecord = tuple[int, int, int | None, str | None, str | None, int | None]


class WindowSlot:
    """What one worker saw during one window.

    The hot path only appends raw nanosecond latencies to lists; they go into HDR histograms
    in bulk when the window closes, which costs a fraction of recording them one by one.
    """

    __slots__ = (
        "latencies",
        "intended",
        "first_response",
        "between_responses",
        "completed",
        "errors",
        "send_ns",
        "recv_ns",
        "responses",
        "late_sends",
        "max_lag_ns",
        "reasons",
        "resent",
        "dropped",
        "sequence_latencies",
        "sequences_failed",
        "requests",
        "output_tokens",
        "token_requests",
        "inter_token",
        "good",
    )

    def __init__(self, record_requests: bool = False) -> None:
        self.latencies: list[int] = []
        self.intended: list[int] = []
        self.first_response: list[int] = []
        self.between_responses: list[int] = []
        self.completed = 0
        self.errors: Counter[str] = Counter()
        self.send_ns = 0
        self.recv_ns = 0
        self.responses = 0
        self.late_sends = 0
        self.max_lag_ns = 0
        self.reasons: dict[tuple[str, str], int] = {}  # (code, server's message) -> count, a few kept
        self.resent = 0
        self.dropped = 0
        self.sequence_latencies: list[int] = []  # stateful models: first send to last response, per sequence
        self.sequences_failed = 0
        self.output_tokens = 0  # tokens of the requests that counted them
        self.token_requests = 0  # successful requests whose tokens were counted
        self.inter_token: list[int] = []  # per request: (last - first response) / (tokens - 1)
        self.good = 0  # successful requests that met every --goodput limit
        # each request's (send, end, intended, error) on the perf_counter clock; None: not asked for
        self.requests: list[tuple[int, int, int | None, str | None]] | None = [] if record_requests else None

    def success(self, latency_ns: int, send_ns: int = 0, recv_ns: int = 0) -> None:
        self.latencies.append(latency_ns)
        self.completed += 1
        self.send_ns += send_ns
        self.recv_ns += recv_ns

    def failure(self, code: str, reason: str = "") -> None:
        self.errors[code] += 1
        if reason:
            key = (code, reason)
            if key in self.reasons or len(self.reasons) < REASONS_KEPT:
                self.reasons[key] = self.reasons.get(key, 0) + 1

    def irregular(self, resent: bool, dropped: int) -> None:
        """A request sent twice (stale socket), or late answers to timed-out requests dropped."""
        self.resent += int(resent)
        self.dropped += dropped

    def scheduled(self, intended_latency_ns: int, lag_ns: int, late: bool) -> None:
        """Open loop: latency counted from the intended send time, and how late the send was."""
        self.intended.append(intended_latency_ns)
        if late:
            self.late_sends += 1
        if lag_ns > self.max_lag_ns:
            self.max_lag_ns = lag_ns

    def streamed(self, first_ns: int, gaps_ns: list[int], responses: int) -> None:
        """Decoupled models: time to the first response and between responses."""
        self.first_response.append(first_ns)
        self.between_responses.extend(gaps_ns)
        self.responses += responses

    def tokens(self, count: int, inter_token_ns: int | None) -> None:
        """A generated answer: its output tokens, and its mean time between tokens where it streamed two or more."""
        self.output_tokens += count
        self.token_requests += 1
        if inter_token_ns is not None:
            self.inter_token.append(inter_token_ns)

    def sequence_completed(self, latency_ns: int) -> None:
        """A sequence whose every step succeeded, from its first send to its last response."""
        self.sequence_latencies.append(latency_ns)

    def sequence_failed(self) -> None:
        """A sequence that ended with a failed step (its END was still sent when the server held it)."""
        self.sequences_failed += 1


class Window:
    """An open window: one slot per recording thread (see the module docstring)."""

    def __init__(self, index: int, limits: HistogramLimits, record_requests: bool = False) -> None:
        self.index = index
        self.limits = limits
        self.record_requests = record_requests
        self.start_ns = time.perf_counter_ns()
        self.slots: dict[Any, WindowSlot] = {}

    def slot(self, key: Any) -> WindowSlot:
        found = self.slots.get(key)
        if found is None:
            found = self.slots.setdefault(key, WindowSlot(self.record_requests))
        return found

    def finished(self) -> int:
        """Completed plus failed requests so far (for count-based windows)."""
        return sum(slot.completed + sum(slot.errors.values()) for slot in list(self.slots.values()))


@dataclass
class WindowStats:
    """A closed window, merged over workers."""

    index: int
    duration_ns: int
    completed: int
    errors: dict[str, int]
    latency: LatencyHistogram
    intended: LatencyHistogram | None
    first_response: LatencyHistogram | None
    between_responses: LatencyHistogram | None
    send_ns: int
    recv_ns: int
    responses: int
    late_sends: int
    max_lag_ns: int
    reasons: dict[tuple[str, str], int] = field(default_factory=dict)
    resent: int = 0
    dropped: int = 0
    sequence_latency: LatencyHistogram | None = None  # stateful models: per completed sequence
    sequences_failed: int = 0
    requests: list[RequestRecord] | None = None  # every request of the window (``--export-requests``)
    output_tokens: int = 0
    token_requests: int = 0
    inter_token: LatencyHistogram | None = None
    good: int = 0

    @property
    def sequences_completed(self) -> int:
        return self.sequence_latency.count if self.sequence_latency is not None else 0

    def sequence_rate(self) -> float:
        """Sequences completed per second."""
        return self.sequences_completed / (self.duration_ns / 1e9) if self.duration_ns else 0.0

    def throughput(self, batch_size: int = 1) -> float:
        """Inferences per second: completed requests times batch over the window's length."""
        return self.completed * batch_size / (self.duration_ns / 1e9) if self.duration_ns else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def top_reasons(self) -> list[tuple[str, str, int]]:
        """The server's error messages, most frequent first: (code, message, count)."""
        ranked = sorted(self.reasons.items(), key=lambda item: -item[1])
        return [(code, reason, count) for (code, reason), count in ranked]


def _merge_reasons(parts: list[dict[tuple[str, str], int]]) -> dict[tuple[str, str], int]:
    merged: Counter[tuple[str, str]] = Counter()
    for part in parts:
        merged.update(part)
    return dict(merged.most_common(REASONS_KEPT))


def merge_window(window: Window, end_ns: int) -> WindowStats:
    """Close a window: merge every worker's slot into histograms."""
    slots = list(window.slots.values())
    errors: Counter[str] = Counter()
    totals = {
        "completed": 0,
        "send_ns": 0,
        "recv_ns": 0,
        "responses": 0,
        "late_sends": 0,
        "resent": 0,
        "dropped": 0,
        "sequences_failed": 0,
        "output_tokens": 0,
        "token_requests": 0,
        "good": 0,
    }
    for slot in slots:
        errors.update(slot.errors)
        for key in totals:
            totals[key] += getattr(slot, key)

    def histogram(field_name: str, always: bool = False) -> LatencyHistogram | None:
        values = [value for slot in slots for value in getattr(slot, field_name)]
        if not values and not always:
            return None
        merged = LatencyHistogram(window.limits)
        merged.record_many_ns(values)
        return merged

    return WindowStats(
        index=window.index,
        duration_ns=end_ns - window.start_ns,
        errors=dict(errors),
        latency=histogram("latencies", always=True),  # type: ignore[arg-type]
        intended=histogram("intended"),
        first_response=histogram("first_response"),
        between_responses=histogram("between_responses"),
        sequence_latency=histogram("sequence_latencies"),
        inter_token=histogram("inter_token"),
        max_lag_ns=max((slot.max_lag_ns for slot in slots), default=0),
        reasons=_merge_reasons([slot.reasons for slot in slots]),
        requests=_wall_clock_requests(window, slots),
        **totals,
    )


def _wall_clock_requests(window: Window, slots: list[WindowSlot]) -> list[RequestRecord] | None:
    """The window's requests in send order, on the wall clock (comparable across load processes)."""
    if not window.record_requests:
        return None
    offset = time.time_ns() - time.perf_counter_ns()
    records: list[RequestRecord] = [
        (sent + offset, done + offset, intended + offset if intended is not None else None, error, None, None)
        for slot in slots
        for sent, done, intended, error in slot.requests or ()
    ]
    records.sort(key=_sent)
    return records


def _sent(record: RequestRecord) -> int:
    return record[0]


def tag_requests(stats: WindowStats, model: str | None = None, process: int | None = None) -> WindowStats:
    """The window with its requests marked as one model's, or one load process's."""
    if stats.requests is None:
        return stats
    tagged = [
        (
            sent,
            done,
            intended,
            error,
            model if model is not None else own_model,
            process if process is not None else own,
        )
        for sent, done, intended, error, own_model, own in stats.requests
    ]
    return dataclasses.replace(stats, requests=tagged)


def merge_stats(windows: list[WindowStats]) -> WindowStats:
    """Several closed windows as one (for a load level's reported figures)."""
    if not windows:
        raise ValueError("no windows to merge")
    limits = windows[0].latency.limits
    latency = LatencyHistogram(limits)
    merged_optional: dict[str, LatencyHistogram | None] = {
        "intended": None,
        "first_response": None,
        "between_responses": None,
        "sequence_latency": None,
        "inter_token": None,
    }
    errors: Counter[str] = Counter()
    for stats in windows:
        latency.merge(stats.latency)
        errors.update(stats.errors)
        for name in merged_optional:
            part = getattr(stats, name)
            if part is not None:
                merged_optional[name] = merged_optional[name] or LatencyHistogram(limits)
                merged_optional[name].merge(part)  # type: ignore[union-attr]
    return WindowStats(
        index=-1,
        duration_ns=sum(w.duration_ns for w in windows),
        completed=sum(w.completed for w in windows),
        errors=dict(errors),
        latency=latency,
        send_ns=sum(w.send_ns for w in windows),
        recv_ns=sum(w.recv_ns for w in windows),
        responses=sum(w.responses for w in windows),
        late_sends=sum(w.late_sends for w in windows),
        max_lag_ns=max(w.max_lag_ns for w in windows),
        reasons=_merge_reasons([w.reasons for w in windows]),
        resent=sum(w.resent for w in windows),
        dropped=sum(w.dropped for w in windows),
        sequences_failed=sum(w.sequences_failed for w in windows),
        output_tokens=sum(w.output_tokens for w in windows),
        token_requests=sum(w.token_requests for w in windows),
        good=sum(w.good for w in windows),
        **merged_optional,  # type: ignore[arg-type]
    )


def merge_concurrent(parts: list[WindowStats]) -> WindowStats:
    """One window as several load processes recorded it at once: counts add, histograms merge exactly.

    The processes' windows run side by side, so the window lasts as long as the longest of them
    (not their sum, as consecutive windows would).
    """
    merged = merge_stats(parts)
    requests = None
    if any(part.requests is not None for part in parts):
        requests = sorted((record for part in parts for record in part.requests or ()), key=_sent)
    return dataclasses.replace(
        merged, index=parts[0].index, duration_ns=max(part.duration_ns for part in parts), requests=requests
    )


class Recorder:
    """Holds the open window; the controller rotates it at window boundaries."""

    def __init__(self, limits: HistogramLimits | None = None, record_requests: bool = False) -> None:
        self.limits = limits or HistogramLimits()
        self.record_requests = record_requests
        self._next_index = 0
        self.current = self._open()

    def _open(self) -> Window:
        window = Window(self._next_index, self.limits, self.record_requests)
        self._next_index += 1
        return window

    def restart_clock(self) -> None:
        """Count the open window's duration from now (after a pause at the boundary)."""
        self.current.start_ns = time.perf_counter_ns()

    def rotate(self, ended_ns: int | None = None) -> WindowStats:
        """Open a fresh window and return the closed one, merged (ending at ``ended_ns`` when the load ended first)."""
        closing = self.current
        self.current = self._open()
        end = self.current.start_ns
        if ended_ns is not None and ended_ns < end:
            end = max(ended_ns, closing.start_ns)  # ended before this window began: it lasted nothing
        return merge_window(closing, end)
