"""Server-sent events (the ``text/event-stream`` format Triton's ``generate_stream`` answers in), read as
they arrive.

An event is a block of ``field: value`` lines ended by a blank line; only its ``data`` lines matter
here (several are joined by newlines, as the format says), and lines starting with ``:`` are
comments. Each event is handed on with the time the read that completed it returned, so a token's
arrival is when its bytes came in, not when a whole body did.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_now = time.perf_counter_ns


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event: its ``event`` name (``""`` when unnamed), its data, when it was whole."""

    name: str
    data: str
    arrival_ns: int
    size: int  # its bytes on the wire, blank line included


def events(pieces: Iterable[bytes]) -> Iterator[Event]:
    """The events in a body given piece by piece (pieces may split events or hold several)."""
    pending = b""
    for piece in pieces:
        arrived = _now()
        pending += piece
        while True:
            end, gap = _event_end(pending)
            if end < 0:
                break
            block, pending = pending[:end], pending[end + gap :]
            event = _parse(block, arrived, end + gap)
            if event is not None:
                yield event
    if pending.strip():  # a last event without its blank line: the stream ended inside it
        raise ValueError(f"the stream ended inside an event: {pending[:80]!r}")


def _event_end(buffer: bytes) -> tuple[int, int]:
    """Where the first event ends and how long its blank-line separator is (-1 when none yet)."""
    found = [(at, len(sep)) for sep in (b"\n\n", b"\r\n\r\n", b"\r\r") if (at := buffer.find(sep)) >= 0]
    return min(found) if found else (-1, 0)


def _parse(block: bytes, arrival_ns: int, size: int) -> Event | None:
    name, data = "", []
    for line in block.decode("utf-8", "replace").splitlines():
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    if not data and not name:
        return None  # comments or ids only: nothing for the reader
    return Event(name, "\n".join(data), arrival_ns, size)
