"""Recorded request traces (``--request-trace``): JSON Lines, one request per line, replayed at its times.

A line: ``{"timestamp_ms": 12.5}``, optionally with ``"inputs": {"INPUT0": [...]}`` in the JSON
data format (that request's own tensors; without them the run's ``--input-data`` is used, in
turn), ``"model"`` (which must be the run's model) and ``"sequence_id"`` (a sequence model's
correlation id: an id's first request carries START, its last END). Times are relative: the first request is
sent when the level starts, the others at their distance from it, divided by the speed-up.

A generative model's trace may give lengths instead of inputs, as Mooncake's traces do:
``{"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [...]}`` (``timestamp`` in
milliseconds, ``hash_ids`` ignored): that request gets a synthetic prompt of ``input_length`` tokens
(words without ``--tokenizer``) and ``max_tokens`` of ``output_length``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfprobe.errors import UsageError
from perfprobe.load.schedule import TraceTimes
from perfprobe.load.sequences import TraceStep

KNOWN_KEYS = {
    "timestamp_ms",
    "timestamp",
    "inputs",
    "model",
    "sequence_id",
    "input_length",
    "output_length",
    "hash_ids",
}


@dataclass(frozen=True)
class PromptLength:
    """A trace line's prompt, by length: ``input_length`` tokens in, ``output_length`` (or the run's) out."""

    input_length: int
    output_length: int | None = None


@dataclass(frozen=True)
class RequestTrace:
    """A trace as read: send times in order, and each request's own inputs (JSON values) if it has them."""

    path: str
    timestamps_ms: tuple[float, ...]
    inputs: tuple[dict[str, Any] | None, ...]
    sequence_ids: tuple[int | str, ...] = ()  # per request, when the trace names its sequences
    lengths: tuple[PromptLength | None, ...] = ()  # per request, when lines give prompt lengths, not inputs

    def owns_item(self, index: int) -> bool:
        """Whether request ``index`` has data of its own (inputs, or a prompt's lengths)."""
        return self.inputs[index] is not None or bool(self.lengths) and self.lengths[index] is not None

    def own_items(self) -> list[tuple[int, dict[str, Any] | PromptLength]]:
        """(line number, inputs or prompt lengths) of the requests with data of their own, in order."""
        return [
            (index + 1, self.inputs[index] or self.lengths[index])  # type: ignore[misc]
            for index in range(len(self.inputs))
            if self.owns_item(index)
        ]

    def __len__(self) -> int:
        return len(self.timestamps_ms)

    def times(self, speedup: float, loop: bool) -> TraceTimes:
        first = self.timestamps_ms[0]
        offsets = tuple(round((stamp - first) * 1e6 / speedup) for stamp in self.timestamps_ms)
        return TraceTimes(offsets, loop)

    def span_s(self) -> float:
        return (self.timestamps_ms[-1] - self.timestamps_ms[0]) / 1000

    def send_items(self, generated: int) -> tuple[int, ...]:
        """Per request, its data item: its own inputs (after the ``generated`` run's items), else the next in turn."""
        items = []
        own = generated
        for index in range(len(self.inputs)):
            if not self.owns_item(index):
                items.append(index % generated)
            else:
                items.append(own)
                own += 1
        return tuple(items)

    def sequence_steps(self, generated: int) -> tuple[TraceStep, ...]:
        """Per request, its sequence step: START at an id's first request, END at its last (per replay)."""
        ids = self.sequence_ids
        first = {sequence_id: index for index, sequence_id in reversed(list(enumerate(ids)))}
        last = {sequence_id: index for index, sequence_id in enumerate(ids)}
        items = self.send_items(generated)
        return tuple(
            TraceStep(sequence_id, first[sequence_id] == index, last[sequence_id] == index, items[index])
            for index, sequence_id in enumerate(ids)
        )


def read_trace(path: str, model: str) -> RequestTrace:
    """Read and check a trace; every mistake is one UsageError naming the line."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"--request-trace {path}: {exc.strerror or exc}") from None
    entries = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            entries.append(_entry(path, number, line, model))
    if not entries:
        raise UsageError(f"--request-trace {path}: no requests in it")
    entries.sort(key=lambda entry: entry[0])  # a trace gathered from several logs may be out of order
    named = sum(1 for entry in entries if entry[2] is not None)
    if named not in (0, len(entries)):
        raise UsageError(f"--request-trace {path}: {named} of {len(entries)} requests have a sequence_id; all or none")
    ids = tuple(e[2] for e in entries) if named else ()
    lengths = tuple(e[3] for e in entries) if any(e[3] is not None for e in entries) else ()
    return RequestTrace(path, tuple(e[0] for e in entries), tuple(e[1] for e in entries), ids, lengths)


def _entry(
    path: str, number: int, line: str, model: str
) -> tuple[float, dict[str, Any] | None, int | str | None, PromptLength | None]:
    where = f"--request-trace {path} line {number}"
    try:
        entry = json.loads(line)
    except ValueError as exc:
        raise UsageError(f"{where}: not JSON ({exc})") from None
    if not isinstance(entry, dict):
        raise UsageError(f'{where}: expected an object such as {{"timestamp_ms": 0}}')
    unknown = sorted(set(entry) - KNOWN_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown keys {unknown} (known: {', '.join(sorted(KNOWN_KEYS))})")
    if "timestamp_ms" in entry and "timestamp" in entry:
        raise UsageError(f"{where}: give timestamp_ms or timestamp (both milliseconds), not both")
    stamp = entry.get("timestamp_ms", entry.get("timestamp"))
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or not math.isfinite(stamp) or stamp < 0:
        raise UsageError(f"{where}: timestamp_ms must be a number of milliseconds, 0 or more")
    named = entry.get("model")
    if named is not None and named != model:
        raise UsageError(f"{where}: names model {named!r}, but this run loads {model!r} (one model per trace)")
    inputs = entry.get("inputs")
    if inputs is not None and (not isinstance(inputs, dict) or not inputs):
        raise UsageError(f"{where}: inputs must be an object of input name to values")
    sequence_id = entry.get("sequence_id")
    if sequence_id is not None and not _valid_id(sequence_id):
        raise UsageError(f"{where}: sequence_id must be a whole number from 1, or a non-empty string")
    return float(stamp), inputs, sequence_id, _lengths(entry, where)


def _lengths(entry: dict[str, Any], where: str) -> PromptLength | None:
    """A line's prompt lengths (Mooncake's ``input_length`` / ``output_length``), checked."""
    given = {key: entry[key] for key in ("input_length", "output_length") if key in entry}
    if not given:
        return None
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
            raise UsageError(f"{where}: {key} must be a whole number of tokens from 1 to 1000000")
    if "input_length" not in given:
        raise UsageError(f"{where}: output_length needs input_length (the prompt's length)")
    if entry.get("inputs") is not None:
        raise UsageError(f"{where}: give inputs or input_length, not both")
    return PromptLength(given["input_length"], given.get("output_length"))


def _valid_id(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
