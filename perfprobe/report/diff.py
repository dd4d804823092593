"""Two sweeps side by side: per load level, how throughput and each percentile moved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perfprobe.report import charts, level_metrics
from perfprobe.report.rundata import Level, SweepRun

UNITS = {"latency": "us", "throughput": "infer/s"}


def level_changes(run_a: SweepRun, run_b: SweepRun, metrics: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """One row per (level both runs measured, metric): A, B, B − A, the change in %, and which is better.

    With repeated runs on either side (``--repeats``), the change in % gets its 95% interval over the runs
    (Student's t, spread pooled: the gate's) and a side is better only when the whole interval says so;
    with one run each there is no interval and "better" is the figures' order.
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
                    **_change_over_runs(metric, level_a, level_b, a, b),
                }
            )
    return rows


def _change_over_runs(
    metric: level_metrics.Metric, level_a: Level, level_b: Level, a: float, b: float
) -> dict[str, Any]:
    """``Better``, ``Runs A``/``Runs B`` and the change's 95% interval in % (empty with one run each)."""
    from perfprobe.measure.intervals import change_interval

    values_a, values_b = metric.run_values(level_a), metric.run_values(level_b)
    found = change_interval(values_b, values_a)
    counts = {"Runs A": len(values_a), "Runs B": len(values_b)}
    if found is None:  # one run each: no spread to judge the change by
        return {"Better": _better(metric, a, b), **counts, "Change % CI low": "", "Change % CI high": ""}
    if found.low > 0 or found.high < 0:  # the whole interval on one side of no change
        better = "B" if (found.low > 0) == metric.higher_is_better else "A"
    else:
        better = "within noise"
    return {
        "Better": better,
        **counts,
        "Change % CI low": round(found.low * 100, 2),
        "Change % CI high": round(found.high * 100, 2),
    }


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
