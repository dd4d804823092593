"""Charts of runs as matplotlib Figure objects (no pyplot state, so any backend and any thread).

Every function returns a Figure; ``save`` writes it as PNG and SVG. Colours are the
Okabe–Ito palette, which readers with the common colour-vision deficiencies can tell apart;
past eight series the line style changes too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from perfprobe.report.figures import Figure as DeclaredFigure
from perfprobe.report.figures import breakdown_parts, column_of
from perfprobe.report.rundata import CompareRun, Level, SweepRun

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
LINE_STYLES = ("-", "--", ":", "-.")
THROUGHPUT = column_of("throughput")
LEVEL_AXIS = {"concurrency": "concurrency (requests in flight)", "rate": "request rate (requests/s)"}


def style(index: int) -> dict[str, str]:
    """Colour (and, past the palette, line style) of the index-th series."""
    return {
        "color": PALETTE[index % len(PALETTE)],
        "linestyle": LINE_STYLES[(index // len(PALETTE)) % len(LINE_STYLES)],
    }


def numbers(table: pd.DataFrame, column: str) -> pd.Series:
    """A column as numbers; an empty cell (a figure the level does not have) is NaN, a gap in the chart."""
    return pd.to_numeric(table[column], errors="coerce").astype(float)


def latency_scale(values_us: list[float]) -> tuple[float, str]:
    """Divisor and unit so latency axes read in µs or ms, whichever keeps numbers short."""
    peak = max((v for v in values_us if not math.isnan(v)), default=0.0)
    return (1000.0, "ms") if peak >= 2000 else (1.0, "µs")


def save(figure: Figure, directory: Path, stem: str, dpi: int = 100) -> list[Path]:
    """PNG and SVG of the figure; returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{stem}.png", directory / f"{stem}.svg"]
    for path in paths:
        figure.savefig(path, dpi=dpi)
    return paths


def save_as(figure: Figure, path: Path, dpi: int = 100) -> Path:
    """The figure in one file, its format by the suffix (.png, .svg)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path


def _new(width: float = 10.0, height: float = 5.5, columns: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots(1, columns, squeeze=False)[0]
    return figure, list(axes)


def _level_axis(axis: Axes, load_kind: str, levels: list[float]) -> None:
    axis.set_xlabel(LEVEL_AXIS[load_kind])
    positive = [v for v in levels if v > 0]
    if positive and max(positive) / min(positive) >= 8:
        axis.set_xscale("log", base=2)
    if 0 < len(levels) <= 16:  # ticks at the measured levels only: there is no concurrency 1.5
        axis.set_xticks(levels, [f"{v:g}" for v in levels])
    axis.grid(True, alpha=0.3)


def throughput_vs_latency(run: SweepRun, column: str = column_of("p99")) -> Figure:
    """One point per level, labelled with the level: the curve a capacity planner reads first."""
    figure, (axis,) = _new()
    table = run.table
    divisor, unit = latency_scale(list(numbers(table, column)))
    x = numbers(table, column) / divisor
    y = numbers(table, THROUGHPUT)
    if _has_bars(table, column) or _has_bars(table, THROUGHPUT):  # repeated runs: both intervals as bars
        axis.errorbar(
            x, y, xerr=_bars(table, column, divisor), yerr=_bars(table, THROUGHPUT), marker="o", capsize=3,
            **style(0), label=run.name,
        )  # fmt: skip
    else:
        axis.plot(x, y, marker="o", **style(0), label=run.name)
    for level, px, py in zip(run.levels, x, y, strict=True):
        axis.annotate(level.label, (px, py), textcoords="offset points", xytext=(6, 4), fontsize=9)
    axis.set_xlabel(f"{column.replace(' latency', '')} latency ({unit})")
    axis.set_ylabel("throughput (inferences/s)")
    axis.set_title(f"Throughput vs {column.split()[0]} latency — {run.title}")
    axis.grid(True, alpha=0.3)
    axis.set_xlim(left=0)
    axis.set_ylim(bottom=0)
    return figure


def latency_breakdown(run: SweepRun, headroom: float = 1.35) -> Figure:
    """Where the mean latency goes at each level, stacked; throughput on the second axis."""
    figure, (axis,) = _new()
    table = run.table
    positions = np.arange(len(table))
    parts = breakdown_parts()
    totals = sum(numbers(table, column).fillna(0.0) for column, _ in parts)
    divisor, unit = latency_scale(list(totals))
    bottom = np.zeros(len(table))
    for index, (column, label) in enumerate(parts):
        values = numbers(table, column).fillna(0.0).to_numpy() / divisor
        axis.bar(positions, values, bottom=bottom, width=0.6, label=label, color=PALETTE[index % len(PALETTE)])
        bottom += values
    axis.set_ylim(0, max(float(bottom.max()), 1e-9) * headroom)  # room for the legend above the bars
    axis.set_xticks(positions, [level.label for level in run.levels])
    axis.set_xlabel(LEVEL_AXIS[run.load_kind])
    axis.set_ylabel(f"mean latency ({unit})")
    axis.grid(True, axis="y", alpha=0.3)
    second = axis.twinx()
    second.plot(positions, numbers(table, THROUGHPUT), color="#000000", marker="D", label="throughput")
    second.set_ylabel("throughput (inferences/s)")
    second.set_ylim(0, max(float(numbers(table, THROUGHPUT).max()), 1e-9) * headroom)
    handles, labels = axis.get_legend_handles_labels()
    extra_handles, extra_labels = second.get_legend_handles_labels()
    axis.legend(handles + extra_handles, labels + extra_labels, fontsize=8, loc="upper left")
    axis.set_title(f"Latency breakdown — {run.title}")
    return figure


def nines(percentile: float) -> float:
    """Percentile → position on the "nines" axis: 90% → 1, 99% → 2, 99.9% → 3."""
    return -math.log10(max(1.0 - percentile / 100.0, 1e-9))


def spectrum_points(level: Level, resolution: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """(nines, latency µs) along the level's histogram, up to the percentile its samples support."""
    histogram = level.histogram
    if not histogram.count:
        return np.array([]), np.array([])
    top = max(min(math.log10(histogram.count), 6.0), 1.0)
    positions = np.linspace(0.0, top, resolution)
    percentiles = 100.0 * (1.0 - np.power(10.0, -positions))
    values = np.array([histogram.percentile_us(float(p)) for p in percentiles], dtype=float)
    return positions, values


def _nines_axis(axis: Axes, top: float) -> None:
    ticks = list(range(0, int(math.ceil(top)) + 1))
    labels = ["0%" if t == 0 else f"{100 * (1 - 10.0**-t):.{max(t - 2, 0)}f}%" for t in ticks]
    axis.set_xticks(ticks, labels)
    axis.set_xlabel("percentile")
    axis.grid(True, alpha=0.3)


def percentile_spectrum(series: list[tuple[str, Level]], title: str, dashed_from: int | None = None) -> Figure:
    """Latency by percentile, one line per (label, level); HdrHistogram's log "nines" x axis.

    ``dashed_from``: series from this index on are drawn dashed (a diff's second run).
    """
    figure, (axis,) = _new()
    curves = [(label, *spectrum_points(level)) for label, level in series]
    divisor, unit = latency_scale([float(v.max()) for _, _, v in curves if len(v)])
    top = 1.0
    for index, (label, positions, values) in enumerate(curves):
        if not len(positions):
            continue
        look = style(index if dashed_from is None else index % max(dashed_from, 1))
        if dashed_from is not None and index >= dashed_from:
            look["linestyle"] = "--"
        axis.plot(positions, values / divisor, label=label, **look)
        top = max(top, float(positions[-1]))
    _nines_axis(axis, top)
    axis.set_ylabel(f"latency ({unit})")
    axis.set_ylim(bottom=0)
    if axis.get_legend_handles_labels()[0]:  # no line at all where no request succeeded
        axis.legend(fontsize=8, loc="upper left")
    axis.set_title(title)
    return figure


def level_curves(runs: list[SweepRun], column: str = column_of("p99"), title: str | None = None) -> Figure:
    """Throughput (left) and a latency percentile (right) against the load level, one line per run."""
    figure, (left, right) = _new(12.0, 5.0, columns=2)
    all_levels = sorted({level.level for run in runs for level in run.levels})
    divisor, unit = latency_scale([v for run in runs for v in numbers(run.table, column)])
    for index, run in enumerate(runs):
        levels = np.array([level.level for level in run.levels])
        _with_bars(left, levels, run.table, THROUGHPUT, run.name, style(index))
        _with_bars(right, levels, run.table, column, run.name, style(index), divisor)
    kind = runs[0].load_kind
    for axis in (left, right):
        _level_axis(axis, kind, all_levels)
        axis.set_ylim(bottom=0)
        axis.legend(fontsize=8)
    left.set_ylabel("throughput (inferences/s)")
    left.set_title("Throughput by load level")
    right.set_ylabel(f"{column.split()[0]} latency ({unit})")
    right.set_title(f"{column.split()[0]} latency by load level")
    names = " vs ".join(f"{letter}: {run.name}" for letter, run in zip("AB", runs, strict=False))
    figure.suptitle(title or (runs[0].title if len(runs) == 1 else f"{names} — {runs[-1].title}"))
    return figure


def declared_figures(run: SweepRun, title: str, shown: list[DeclaredFigure]) -> Figure:
    """Figures declared with this chart title (``figures.Figure.chart``), each a line against the load level."""
    figure, (axis,) = _new()
    levels = [level.level for level in run.levels]
    for index, declared in enumerate(shown):
        _with_bars(axis, np.array(levels), run.table, declared.column, declared.column, style(index))
    _level_axis(axis, run.load_kind, levels)
    units = sorted({declared.unit for declared in shown if declared.unit})
    axis.set_ylabel(", ".join(units))
    axis.set_ylim(bottom=0)
    axis.legend(fontsize=8)
    axis.set_title(f"{title} — {run.title}")
    return figure


def compare_transports(run: CompareRun) -> Figure:
    """Throughput vs tensor size per transport and level (left) and speed-up over the wire at each level
    (right): the figures of compare.csv and verdict.txt, with their 95% intervals as error bars after
    repeated runs."""
    from perfprobe.units import human

    figure, (left, right) = _new(12.0, 5.0, columns=2)
    table = run.table
    loads = list(dict.fromkeys(table["Load"]))
    for index, ((transport, load), cells) in enumerate(table.groupby(["Transport", "Load"], sort=False)):
        label = transport if len(loads) == 1 else f"{transport}, load {load}"
        cells = cells.sort_values("Tensor Bytes")
        sizes = cells["Tensor Bytes"].to_numpy()
        _with_bars(left, sizes, cells, "Inferences/Second", label, style(index))
        if transport != "wire" and numbers(cells, "Speed-up").notna().any():
            _with_bars(right, sizes, cells, "Speed-up", label, style(index))
    sizes = sorted(table["Tensor Bytes"].unique())
    for axis in (left, right):
        if len(sizes) > 1:
            axis.set_xscale("log", base=2)
        axis.set_xticks(sizes, [human(int(size)) for size in sizes])
        axis.set_xlabel("tensor size")
        axis.grid(True, alpha=0.3)
    left.set_yscale("log")
    left.set_ylabel("throughput (inferences/s, log)")
    left.set_title("Throughput vs tensor size")
    left.legend(fontsize=8)
    right.axhline(1.0, color="#666666", linewidth=1, label="the wire")
    right.set_ylabel("throughput ÷ the wire's at the same load (×)")
    right.set_title("Shared-memory speed-up" + (" (95% CI)" if _has_bars(table, "Speed-up") else ""))
    right.legend(fontsize=8)
    skipped = "; ".join(f"{name} skipped" for name in run.skipped)
    figure.suptitle(f"Wire vs shared memory — {run.title}{' (' + skipped + ')' if skipped else ''}")
    return figure


def _has_bars(table: pd.DataFrame, column: str) -> bool:
    low = f"{column} CI low"
    return low in table.columns and numbers(table, low).notna().any()


def _with_bars(
    axis: Axes, x: np.ndarray, table: pd.DataFrame, column: str, label: str, look: dict, divisor: float = 1.0
) -> None:
    """A line of ``column`` (over ``divisor``) against ``x``, with error bars from its 95% interval's columns
    where the run has them (repeated runs)."""
    values = numbers(table, column).to_numpy() / divisor
    if not _has_bars(table, column):
        axis.plot(x, values, marker="o", label=label, **look)
        return
    axis.errorbar(x, values, yerr=_bars(table, column, divisor), marker="o", capsize=4, label=label, **look)


def _bars(table: pd.DataFrame, column: str, divisor: float = 1.0) -> np.ndarray | None:
    """Distances below and above each value to its 95% interval (None without one: no bars)."""
    if not _has_bars(table, column):
        return None
    values = numbers(table, column).to_numpy() / divisor
    low = numbers(table, f"{column} CI low").to_numpy() / divisor
    high = numbers(table, f"{column} CI high").to_numpy() / divisor
    return np.vstack([np.nan_to_num(values - low), np.nan_to_num(high - values)])


def history_series(
    names: list[str],
    estimates: list[tuple[float, float, float]],
    runs: list[Sequence[float]],
    title: str,
    changes: list[int],
) -> Figure:
    """A figure across a history's runs (oldest left, each named): each run's estimate with its 95% interval
    (point, low, high; all three equal for a run measured once), the change points (the first run of each new
    stretch) and each stretch's median of the runs' values."""
    figure, (axis,) = _new(11.0, 4.5)
    positions = np.arange(len(runs))
    points, lows, highs = (np.array(column, dtype=float) for column in zip(*estimates, strict=True))
    bars = np.vstack([points - lows, highs - points])
    axis.errorbar(positions, points, yerr=bars, marker="o", capsize=3, **style(0), label="run")
    edges = [0, *changes, len(runs)]
    for start, end in zip(edges, edges[1:], strict=False):
        median = float(np.median([v for values in runs[start:end] for v in values]))
        axis.hlines(median, start - 0.4, end - 0.6, colors=PALETTE[5], linewidth=2)
    for index in changes:
        axis.axvline(index - 0.5, color=PALETTE[5], linestyle="--", linewidth=1)
    step = max(len(runs) // 12, 1)
    axis.set_xticks(positions[::step], names[::step])
    axis.set_xlabel("run (oldest first)")
    axis.grid(True, alpha=0.3)
    axis.set_title(f"{title} — {len(changes)} change point(s)")
    return figure


__all__ = [
    "compare_transports",
    "latency_breakdown",
    "level_curves",
    "percentile_spectrum",
    "save",
    "throughput_vs_latency",
]
