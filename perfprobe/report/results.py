"""A sweep's results as rows: the load level, then every figure ``perfprobe.report.figures`` declares.

perf_analyzer's ``-f`` columns come first and keep their names, order and units (integer
microseconds), so scripts written for its CSV read ours unchanged.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from perfprobe.load.sweeper import LevelResult
from perfprobe.report.figures import ABSENT, FIGURES, figure_columns, interval_columns, level_values, with_intervals

LOAD_COLUMN = {"concurrency": "Concurrency", "rate": "Request Rate"}


def columns(load_kind: str, intervals: bool = False) -> list[str]:
    """The CSV's columns; with ``intervals`` (a run with --repeats) each interval's low and high at the end,
    so perf_analyzer's columns keep their places."""
    extra = [name for figure in with_intervals() for name in interval_columns(figure.column)] if intervals else []
    return [LOAD_COLUMN[load_kind], *figure_columns(), *extra]


def has_intervals(rows: list[dict[str, Any]]) -> bool:
    """Whether the rows come from repeated runs (they carry interval columns)."""
    probe = interval_columns(with_intervals()[0].column)[0]
    return any(probe in row for row in rows)


def level_row(result: LevelResult, batch_size: int, composing: list[str] | None = None) -> dict[str, Any]:
    """One CSV row: the level, then every declared figure (microsecond integers where perf_analyzer has them)."""
    level = int(result.level) if result.load_kind == "concurrency" else result.level
    return {LOAD_COLUMN[result.load_kind]: level, **level_values(result, batch_size, composing)}


def repeated_row(
    runs: list[LevelResult], pooled: LevelResult, batch_size: int, composing: list[str] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One level measured in several runs (``pooled``: ``LevelResult.pooled(runs)``): its row, and each run's own.

    Counts, flags and warnings are the runs' pooled figures; a figure declared with ``across_runs``
    is the estimate over the runs (their mean, or their median for a percentile) with its 95%
    interval in ``… CI low`` / ``… CI high``, empty where fewer than two runs have the figure.
    """
    from perfprobe.measure.intervals import interval

    row = level_row(pooled, batch_size, composing)
    singles = [level_row(run, batch_size, composing) for run in runs]
    for figure in with_intervals():
        low, high = interval_columns(figure.column)
        values = [single[figure.column] for single in singles if single[figure.column] != ABSENT]
        found = interval(values, figure.across_runs)
        row[low] = row[high] = ABSENT
        if found is not None:  # every figure is a count, a rate or a time: its interval stops at 0
            point, bottom, top = found.as_tuple()
            row[figure.column], row[low], row[high] = (_rounded(figure.unit, v) for v in (point, max(bottom, 0), top))
    row["Windows"] = sum(len(run.windows) for run in runs)  # measured, not only those pooled
    return row, singles


def _rounded(unit: str, value: float) -> float | int:
    """A figure as its column shows it: whole microseconds, a fraction to 6 places, else 2."""
    if unit == "us":
        return round(value)
    return round(value, 6 if unit == "fraction" else 2)


def model_row(
    result: LevelResult, batch_size: int, composing: list[str] | None = None, runs: list[LevelResult] | None = None
) -> dict[str, Any]:
    """One model's row of a run with several: its own figures, no client CPU (the models share a process).

    ``runs``: the model's part of each run of a repeated level (``result`` their pool): its estimates and
    intervals, as the level's own row has them."""
    if runs is not None and len(runs) > 1:
        values = repeated_row(runs, result, batch_size, composing)[0]
    else:
        values = level_row(result, batch_size, composing)
    row = {"Model": result.target_model, **values}
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
        fields = (["Model"] if by_model else []) + columns(load_kind, has_intervals(rows))
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
