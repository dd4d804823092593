"""Baseline comparison: two-sided, and blind to changes the runs' own noise could explain.

Each figure of each run comes with the range it could as well have had with nothing changed:
the range its stable windows spanned, widened for a percentile by the band its sample count
allows. For each limited metric and each load level both runs measured, the change that is
certain is the gap between those ranges, in the "worse" direction (lower throughput, higher
latency) relative to the baseline. A certain worsening beyond the limit is a regression; a
certain improvement beyond it is reported as one and never fails. A change no bigger than
the spread the windows measured therefore never counts, whatever the limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfprobe.gates.outcome import FAILED, PASSED, SKIPPED, Outcome
from perfprobe.gates.thresholds import BadExpression, show_value
from perfprobe.report import level_metrics
from perfprobe.report.rundata import Level, SweepRun

DEFAULT_LIMITS = "throughput=5%,p99=10%"


@dataclass(frozen=True)
class Limit:
    metric: level_metrics.Metric
    fraction: float  # the largest worsening allowed, e.g. 0.05

    @property
    def text(self) -> str:
        return f"{self.metric.name} vs baseline (max {self.fraction:.0%} worse)"


def parse_limits(spec: str) -> list[Limit]:
    """``throughput=5%,p99=10%`` (a bare number is a fraction: ``p99=0.1``)."""
    limits = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, sep, amount = part.partition("=")
        if not sep:
            raise BadExpression(f"--max-regression {part!r}: expected METRIC=PERCENT, e.g. p99=10%")
        try:
            metric = level_metrics.metric(name)
        except KeyError as exc:
            raise BadExpression(f"--max-regression {part!r}: {exc.args[0]}") from None
        amount = amount.strip()
        try:
            fraction = float(amount[:-1]) / 100.0 if amount.endswith("%") else float(amount)
        except ValueError:
            raise BadExpression(f"--max-regression {part!r}: {amount!r} is not a percentage") from None
        if not math.isfinite(fraction) or fraction < 0:
            raise BadExpression(f"--max-regression {part!r}: a limit must be a finite, non-negative percentage")
        limits.append(Limit(metric, fraction))
    return limits


def comparable(run: SweepRun, baseline: SweepRun, allow_different_model: bool = False) -> None:
    """Refuse (ValueError, with the reason) a baseline of another model or protocol, unless allowed."""
    if allow_different_model:
        return
    if run.model != baseline.model:
        raise ValueError(
            f"the baseline measured model {baseline.model!r}, this run {run.model!r}: "
            "give --allow-different-model to compare them anyway"
        )
    if run.protocol != baseline.protocol:
        raise ValueError(
            f"the baseline ran over {baseline.protocol}, this run over {run.protocol}: "
            "give --allow-different-model to compare them anyway"
        )


def compare(run: SweepRun, baseline: SweepRun, limits: list[Limit]) -> list[Outcome]:
    """Every limit at every level both runs measured; comparing nothing at all is a failure."""
    shared = [level for level in run.levels if baseline.level(level.level, level.load_kind) is not None]
    if not shared:
        why = (
            f"the baseline shares no load level with the run (baseline: {_labels(baseline)}; run: {_labels(run)}), "
            "so nothing was compared"
        )
        return [Outcome("baseline comparison", "baseline", "", FAILED, "nothing compared", "shared load levels", why)]
    outcomes = []
    for limit in limits:
        for level in run.levels:
            base = baseline.level(level.level, level.load_kind)
            if base is None:
                outcomes.append(
                    Outcome(limit.text, "baseline", level.label, SKIPPED, "", "", "the baseline has no such level")
                )
                continue
            outcomes.append(_one(limit, level, base))
    return outcomes


def _labels(run: SweepRun) -> str:
    return ", ".join(level.label for level in run.levels) or "none"


def _one(limit: Limit, level: Level, base: Level) -> Outcome:
    metric = limit.metric
    now, then = metric.value(level), metric.value(base)
    now_low, now_high = metric.interval(level)
    then_low, then_high = metric.interval(base)
    measured = f"{show_value(metric, then)} → {show_value(metric, now)}"
    expected = f"at most {limit.fraction:.0%} worse beyond the noise"
    if metric.kind == "latency" and not (level.has_latency and base.has_latency):
        side = "run" if not level.has_latency else "baseline"
        why = f"the {side} has no successful request at this level, so no latency to compare"
        return Outcome(limit.text, "baseline", level.label, FAILED, "no latency", expected, why)
    if level_metrics.absent(now) or level_metrics.absent(then):
        side = "run" if level_metrics.absent(now) else "baseline"
        why = f"the {side} has no {metric.name} at this level, so nothing to compare"
        return Outcome(limit.text, "baseline", level.label, FAILED, "not measured", expected, why)
    if then <= 0:
        if not metric.higher_is_better and now_low > then_high:
            why = f"regression: {show_value(metric, then)} → {show_value(metric, now)} (from zero)"
            return Outcome(limit.text, "baseline", level.label, FAILED, measured, expected, why)
        return Outcome(limit.text, "baseline", level.label, PASSED, measured, expected, "baseline is 0: no change")
    change = (now - then) / then
    if metric.higher_is_better:
        surely_worse, surely_better = (then_low - now_high) / then, (now_low - then_high) / then
    else:
        surely_worse, surely_better = (now_low - then_high) / then, (then_low - now_high) / then
    noise = (
        f"noise: baseline {show_value(metric, then_low)}–{show_value(metric, then_high)}, "
        f"run {show_value(metric, now_low)}–{show_value(metric, now_high)}"
    )
    if surely_worse > limit.fraction:
        why = f"regression: {change:+.1%}, at least {surely_worse:.1%} worse beyond the noise; {noise}"
        return Outcome(limit.text, "baseline", level.label, FAILED, measured, expected, why)
    if surely_better > limit.fraction:
        why = f"improvement: {change:+.1%}, at least {surely_better:.1%} better beyond the noise; {noise}"
    else:
        why = f"within limits: {change:+.1%}; {noise}"
    return Outcome(limit.text, "baseline", level.label, PASSED, measured, expected, why)
