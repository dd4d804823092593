"""A sweep's results as rows: the load level, then every figure ``perfprobe.report.figures`` declares.

perf_analyzer's ``-f`` columns come first and keep their names, order and units (integer
microseconds), so scripts written for its CSV read ours unchanged.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from perfprobe.load.sweeper import LevelResult
from perfprobe.report.figures import ABSENT, FIGURES, figure_columns, level_values

LOAD_COLUMN = {"concurrency": "Concurrency", "rate": "Request Rate"}


def columns(load_kind: str) -> list[str]:
    return [LOAD_COLUMN[load_kind], *figure_columns()]


def level_row(result: LevelResult, batch_size: int, composing: list[str] | None = None) -> dict[str, Any]:
    """One CSV row: the level, then every declared figure (microsecond integers where perf_analyzer has them)."""
    level = int(result.level) if result.load_kind == "concurrency" else result.level
    return {LOAD_COLUMN[result.load_kind]: level, **level_values(result, batch_size, composing)}


def model_row(result: LevelResult, batch_size: int, composing: list[str] | None = None) -> dict[str, Any]:
    """One model's row of a run with several: its own figures, no client CPU (the models share a process)."""
    row = {"Model": result.target_model, **level_row(result, batch_size, composing)}
    row["Client CPU us/req"] = ""
    return row


def combined_row(row: dict[str, Any], model_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The level's row over every model: throughput and latency of all, server counts summed.

    A server breakdown belongs to one model; each model's row has its own, the combined row none.
    """
    combined = dict(row)
    for figure in FIGURES:
        if not figure.per_model:
            combined[figure.column] = ABSENT
    counts = [r["Server Success"] for r in model_rows]
    combined["Server Success"] = sum(counts) if all(c != "" for c in counts) else ""
    return combined


def write_csv(path: Path, load_kind: str, rows: list[dict[str, Any]], by_model: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=(["Model"] if by_model else []) + columns(load_kind))
        writer.writeheader()
        writer.writerows(rows)
