"""Named figures of a load level, each with its per-window values (for the noise a run measured).

Names follow what k6 users write: ``throughput``, ``p99``, ``p(99.9)``, ``avg``, ``med``,
``min``, ``max``, ``error_rate``, ``server_queue``… Latencies are in microseconds, throughput
in inferences per second, rates as fractions. Any percentile can be asked for: it is read from
the level's HDR histograms, not limited to the CSV's columns.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from perfprobe.measure.intervals import Interval
from perfprobe.report.figures import FIGURES, Figure, gated
from perfprobe.report.rundata import Level

_PERCENTILE = re.compile(r"^p\(?(\d+(?:\.\d+)?)\)?$")


@dataclass(frozen=True)
class Metric:
    """How to read one figure of a level, and which direction is better."""

    name: str
    kind: str  # "latency" (µs), "throughput" (infer/s), "ratio" (fraction) or "count"
    higher_is_better: bool
    value: Callable[[Level], float]
    per_window: Callable[[Level], list[float]] | None = None
    sampling: Callable[[Level], tuple[float, float]] | None = None  # the estimate's own plausible range
    across_runs: str = "mean"  # its estimate over repeated runs: "mean" (t-interval) or "median" (bootstrap)

    def run_values(self, level: Level) -> list[float]:
        """Its value in each run of the level (one value for a level measured once)."""
        return [self.value(run) for run in level.run_levels()]

    def over_runs(self, level: Level) -> Interval | None:
        """Its estimate and 95% interval over a level's repeated runs (None for a level measured once)."""
        from perfprobe.measure.intervals import interval

        if not level.repeated:
            return None
        return interval(self.run_values(level), self.across_runs)

    def windows(self, level: Level) -> list[float]:
        return self.per_window(level) if self.per_window else []

    def interval(self, level: Level) -> tuple[float, float]:
        """The values this figure could as well have had with nothing changed.

        The range the stable windows spanned, widened for a percentile by the band its sample
        count allows; never narrower than the figure itself.
        """
        value = self.value(level)
        values = [value, *self.windows(level)]
        if self.sampling:
            values += list(self.sampling(level))
        return min(values), max(values)


def _number(value: object) -> float:
    """A CSV cell as a number; an empty cell is NaN: the figure is absent there, not zero.

    (The combined row of several models has no server breakdown; a stateless model no sequence rate.)
    """
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def absent(value: float) -> bool:
    """Whether a level lacks the figure (see ``_number``): gates fail on it, diffs leave it out."""
    return math.isnan(value)


def _column(name: str) -> Callable[[Level], float]:
    return lambda level: _number(level.row.get(name))


def gated_percentile(name: str) -> float | None:
    """The percentile a metric name reads (``p99``, ``p(99.9)``, ``med``), or None for another figure."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key == "med":
        return 50.0
    match = _PERCENTILE.match(key)
    return float(match.group(1)) if match else None


def _estimated(read: Callable[[Level], float], across_runs: str) -> Callable[[Level], float]:
    """A figure read from a level's histograms; for a level of repeated runs, the runs' estimate (their
    median or mean, as its CSV cell is) rather than the pooled histograms'."""

    def value(level: Level) -> float:
        if not level.repeated:
            return read(level)
        values = [read(run) for run in level.run_levels()]
        return float(statistics.median(values) if across_runs == "median" else statistics.fmean(values))

    return value


def percentile_metric(percentile: float, name: str | None = None) -> Metric:
    return Metric(
        name or f"p({percentile:g})",
        "latency",
        False,
        _estimated(lambda level: float(level.histogram.percentile_us(percentile)), "median"),
        lambda level: [float(h.percentile_us(percentile)) for h in level.window_histograms()],
        lambda level: percentile_band(level, percentile),
        "median",
    )


def percentile_band(level: Level, percentile: float, z: float = 2.0) -> tuple[float, float]:
    """A percentile's ~95% band, in µs, from its sample count alone.

    The rank of the q-th percentile among n samples varies by sqrt(n·q·(1−q)); the histogram
    read at q ± z·sqrt(q(1−q)/n) gives the values it could as well have been. With few samples
    in the tail (p99.9 of 2,000 requests) the band is wide, and a gate should know.
    """
    histogram = level.histogram
    value = float(histogram.percentile_us(percentile))
    if histogram.count < 2:
        return value, value
    q = percentile / 100.0
    half = z * math.sqrt(q * (1.0 - q) / histogram.count)
    low = histogram.percentile_us(max(q - half, 0.0) * 100.0)
    high = histogram.percentile_us(min(q + half, 1.0) * 100.0)
    return float(low), float(high)


# figures read from the level's merged HDR histograms, whatever their CSV cells say (any percentile works too)
FROM_HISTOGRAMS: dict[str, Metric] = {
    "avg": Metric(
        "avg",
        "latency",
        False,
        _estimated(lambda level: level.histogram.mean_us, "mean"),
        lambda level: [h.mean_us for h in level.window_histograms()],
    ),
    "med": percentile_metric(50.0, "med"),
}


def _declared(figure: Figure) -> Metric:
    return Metric(
        figure.gate,
        figure.kind,
        figure.higher_is_better,
        _column(figure.column),
        figure.per_window,
        across_runs=figure.across_runs or "mean",
    )


ALIASES = {"rps": "throughput", "infer_per_sec": "throughput", "mean": "avg"}


def metric(name: str) -> Metric:
    """The metric a user named; KeyError (with the known names) when there is none."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key in FROM_HISTOGRAMS:
        return FROM_HISTOGRAMS[key]
    match = _PERCENTILE.match(key)
    if match:
        percentile = float(match.group(1))
        if 0 < percentile <= 100:
            return percentile_metric(percentile, name.strip())
    declared = gated()
    if key in declared:
        return _declared(declared[key])
    raise KeyError(f"unknown metric {name.strip()!r}; known: {', '.join(known_names())}")


def from_server(name: str) -> bool:
    """Whether the metric named so is read from the server's statistics."""
    figure = gated().get(ALIASES.get(name.strip().lower(), name.strip().lower()))
    return figure is not None and figure.from_server


def known_names() -> list[str]:
    named = [name for name in gated() if not _PERCENTILE.match(name)]
    return [*dict.fromkeys([*named, *FROM_HISTOGRAMS]), "pN / p(N) for any percentile"]


def diff_names() -> tuple[str, ...]:
    """What ``perfprobe diff`` compares, in the table's order."""
    return tuple(figure.gate for figure in sorted(FIGURES, key=lambda f: f.diff) if figure.diff and figure.gate)
