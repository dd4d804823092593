"""``requests.jsonl``: every measured request of a run, one JSON object a line (``--export-requests``).

The histograms answer the usual questions; this file answers the rest (a timeline of one slow
second, which process sent the outliers, whether errors came in bursts) and lets a user check
perfprobe's figures from the raw requests. Times are wall-clock nanoseconds, so requests from
load processes (and a cluster's machines, as far as their clocks agree) fall on one time line.
Warm-up requests are not in it; each line says whether its window is one the level's figures
come from (``reported``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from perfprobe.load.sweeper import LevelResult

FILE_NAME = "requests.jsonl"


def request_rows(levels: list[LevelResult]) -> Iterator[dict[str, Any]]:
    """One row per request, level by level and window by window (None where none were kept)."""
    for level in levels:
        reported = {id(window) for window in level.reported}
        for window in level.windows:
            for sent, ended, intended, error, model, process in window.stats.requests or ():
                yield {
                    "load_kind": level.load_kind,
                    "level": level.level,
                    "window": window.stats.index,
                    "reported": id(window) in reported,
                    "model": model or level.target_model,
                    "process": process,
                    "send_ns": sent,
                    "end_ns": ended,
                    "intended_ns": intended,
                    "latency_us": (ended - sent) / 1000,
                    "error": error,
                }


def kept_requests(levels: list[LevelResult]) -> bool:
    """Whether the run kept its requests (``--export-requests``)."""
    return any(window.stats.requests is not None for level in levels for window in level.windows)


def append_request_log(path: Path, levels: list[LevelResult]) -> int:
    """Add the levels' rows at the end of ``path``; how many were written."""
    count = 0
    with path.open("a") as handle:
        for row in request_rows(levels):
            handle.write(json.dumps(row, separators=(",", ":")) + "\n")
            count += 1
    return count


def read_request_log(path: Path) -> list[dict[str, Any]]:
    """The rows of a written ``requests.jsonl``, as ``request_rows`` made them."""
    with path.open() as handle:
        return [json.loads(line) for line in handle]


def release_requests(level: LevelResult) -> None:
    """Drop a level's request records once they are written: they are most of a kept level's memory."""
    for window in level.windows:
        window.stats.requests = None
        for part in window.parts.values():
            part.requests = None
