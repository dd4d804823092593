"""What the benchmarks share: core lists from the command line, and a median with its range over rounds."""

from __future__ import annotations

import statistics


def cpus(text: str) -> set[int]:
    """``--server-cpus 0`` / ``--client-cpus 1,2``: the cores, as ``os.sched_setaffinity`` takes them."""
    return {int(cpu) for cpu in text.split(",")}


def summary(values: list[float], digits: int = 3) -> str:
    """The median over rounds with the range it came from (``—`` for none)."""
    if not values:
        return "—"
    return f"{statistics.median(values):,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"
