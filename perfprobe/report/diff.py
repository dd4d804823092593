"""Two sweeps side by side: per load level, how throughput and each percentile moved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perfprobe.report import charts, level_metrics
from perfprobe.report.rundata import SweepRun

UNITS = {"latency": "us", "throughput": "infer/s"}


def level_changes(run_a: SweepRun, run_b: SweepRun, metrics: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """One row per (level both runs measured, metric): A, B, B − A and the change in %.

    ``metrics`` by default: every figure declared with a place in the diff (``figures.Figure.diff``).
    """
    metrics = metrics or level_metrics.diff_names()
    rows = []
    for level_a in run_a.levels:
        level_b = run_b.level(level_a.level, level_a.load_kind)
        if level_b is None:
            continue
        for name in metrics:
            metric = level_metrics.metric(name)
            a, b = metric.value(level_a), metric.value(level_b)
            if level_metrics.absent(a) or level_metrics.absent(b):
                continue  # not measured in one of them (a combined row of several models has no server breakdown)
            rows.append(
                {
                    "Level": level_a.label,
                    "Metric": metric.name,
                    "Unit": UNITS.get(metric.kind, ""),
                    "A": round(a, 6),
                    "B": round(b, 6),
                    "Change": round(b - a, 6),
                    "Change %": round((b - a) / a * 100, 2) if a else "",
                    "Better": _better(metric, a, b),
                }
            )
    return rows


def _better(metric: level_metrics.Metric, a: float, b: float) -> str:
    if a == b:
        return "same"
    return "B" if (b > a) == metric.higher_is_better else "A"


def unmatched_levels(run_a: SweepRun, run_b: SweepRun) -> list[str]:
    a = {lv.label for lv in run_a.levels}
    b = {lv.label for lv in run_b.levels}
    return [f"{label} only in A" for label in sorted(a - b)] + [f"{label} only in B" for label in sorted(b - a)]


def overlay_charts(run_a: SweepRun, run_b: SweepRun, directory: Path, dpi: int = 100) -> dict[str, Any]:
    """Both runs on one set of axes: level curves, and percentile spectra at the shared levels."""
    figures: dict[str, Any] = {"diff_levels": charts.level_curves([run_a, run_b])}
    shared = [lv for lv in run_a.levels if run_b.level(lv.level) is not None]
    series = [(f"A {lv.label}", lv) for lv in shared] + [(f"B {lv.label}", run_b.level(lv.level)) for lv in shared]
    if shared:
        title = f"Latency by percentile — A: {run_a.name} (solid) vs B: {run_b.name} (dashed)"
        figures["diff_spectrum"] = charts.percentile_spectrum(series, title, dashed_from=len(shared))  # type: ignore[arg-type]
    for stem, figure in figures.items():
        charts.save(figure, directory, stem, dpi)
    return figures
