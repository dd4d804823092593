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
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from perfprobe.gates.outcome import FAILED, INCONCLUSIVE, PASSED, SKIPPED, Outcome
from perfprobe.gates.thresholds import BadExpression, show_value
from perfprobe.report import level_metrics
from perfprobe.report.rundata import Level, SweepRun
from perfprobe.units import parse_fraction

DEFAULT_LIMITS = "throughput=5%,p99=10%"


@dataclass(frozen=True)
class Limit:
    metric: level_metrics.Metric
    fraction: float  # the largest worsening allowed, e.g. 0.05
    named: str = ""  # how outcomes name it ("": against a baseline)

    @property
    def text(self) -> str:
        return self.named or f"{self.metric.name} vs baseline (max {self.fraction:.0%} worse)"


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
            fraction = parse_fraction(amount)
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


def compare(run: SweepRun, baseline: SweepRun | list[SweepRun], limits: list[Limit]) -> list[Outcome]:
    """Every limit at every level the run and a baseline measured; comparing nothing at all is a failure.

    Several baselines (earlier runs of the same build) pool their runs: each adds its values to the
    baseline's side of the interval.
    """
    baselines = baseline if isinstance(baseline, list) else [baseline]
    shared = [level for level in run.levels if _bases(baselines, level)]
    if not shared:
        why = (
            f"the baseline shares no load level with the run (baseline: {_labels(baselines[0])}; run: {_labels(run)}), "
            "so nothing was compared"
        )
        return [Outcome("baseline comparison", "baseline", "", FAILED, "nothing compared", "shared load levels", why)]
    outcomes = []
    for limit in limits:
        for level in run.levels:
            bases = _bases(baselines, level)
            if not bases:
                outcomes.append(
                    Outcome(limit.text, "baseline", level.label, SKIPPED, "", "", "the baseline has no such level")
                )
                continue
            outcomes.append(judge(limit, level, bases))
    return outcomes


def _bases(baselines: list[SweepRun], level: Level) -> list[Level]:
    return [found for base in baselines if (found := base.level(level.level, level.load_kind)) is not None]


def _labels(run: SweepRun) -> str:
    return ", ".join(level.label for level in run.levels) or "none"


def judge(limit: Limit, level: Level, bases: list[Level]) -> Outcome:
    """One limit at one level against baseline runs: regression, pass, or inconclusive, by where the
    change's interval lies.

    The change is relative to the baseline, counted as worsening (lower throughput, higher latency).
    Its interval: with repeated runs on either side (``--repeats``, or several baselines), Student's
    95% t-interval over the runs, their spread pooled; with one run on each side, the range the runs' stable windows
    allow (how far apart they could be with nothing changed). Entirely beyond the limit: a regression;
    entirely within it: a pass; straddling it: inconclusive, with about how many runs would decide it.
    """
    metric = limit.metric
    if metric.kind == "latency" and not (level.has_latency and all(base.has_latency for base in bases)):
        side = "run" if not level.has_latency else "baseline"
        why = f"the {side} has no successful request at this level, so no latency to compare"
        return Outcome(limit.text, "baseline", level.label, FAILED, "no latency", _expected(limit), why)
    then_values = [value for base in bases for value in metric.run_values(base)]
    return judge_values(limit, level, then_values, lambda then: _window_noise(metric, level, bases, then))


def judge_values(
    limit: Limit,
    level: Level,
    then_values: list[float],
    one_each: Callable[[float], Worsening] | None = None,
    kind: str = "baseline",
) -> Outcome:
    """One limit at one level against the baseline's values (one per run): the verdict ``judge`` describes.

    ``one_each``: the interval when each side has one value (from the runs' windows); without it,
    such a comparison is inconclusive.
    """
    metric = limit.metric
    now_values = metric.run_values(level)
    now, then = _centre(now_values), _centre(then_values)
    measured = f"{show_value(metric, then)} → {show_value(metric, now)}"
    expected = _expected(limit)
    if level_metrics.absent(now) or level_metrics.absent(then):
        side = "run" if level_metrics.absent(now) else "baseline"
        why = f"the {side} has no {metric.name} at this level, so nothing to compare"
        return Outcome(limit.text, kind, level.label, FAILED, "not measured", expected, why)
    if then <= 0:
        worse_from_zero = not metric.higher_is_better and min(now_values) > max(then_values)
        if worse_from_zero:
            why = f"regression: {show_value(metric, then)} → {show_value(metric, now)} (from zero)"
            return Outcome(limit.text, kind, level.label, FAILED, measured, expected, why)
        return Outcome(limit.text, kind, level.label, PASSED, measured, expected, "baseline is 0: no change")
    worse = _over_runs(metric, now_values, then_values)
    if worse is None:
        if one_each is None:
            why = "inconclusive: one run on each side and no windows to tell the noise; add runs (--repeats 3)"
            return Outcome(limit.text, kind, level.label, INCONCLUSIVE, measured, expected, why)
        worse = one_each(then)
    return _verdict(limit, level.label, measured, expected, (now - then) / then, worse, kind)


def _expected(limit: Limit) -> str:
    return f"at most {limit.fraction:.0%} worse"


def _centre(values: list[float]) -> float:
    """The runs' mean (a single run's own figure); NaN when no run has the figure."""
    present = [value for value in values if not level_metrics.absent(value)]
    return sum(present) / len(present) if present else math.nan


@dataclass(frozen=True)
class Worsening:
    """The interval of the change, as a fraction worse than the baseline, and where it came from."""

    low: float
    high: float
    source: str  # how the interval was found, as the verdict says it
    runs: int  # runs per side behind it (1: one run each, the windows' noise)

    def shown(self) -> str:
        return f"{self.low:+.1%}…{self.high:+.1%} worse"


def _over_runs(metric: level_metrics.Metric, now_values: list[float], then_values: list[float]) -> Worsening | None:
    """The change's 95% interval over the runs, as worsening; None with one run on each side."""
    from perfprobe.measure.intervals import change_interval

    found = change_interval(now_values, then_values)
    if found is None:
        return None
    low, high = (-found.high, -found.low) if metric.higher_is_better else (found.low, found.high)
    source = f"95% CI over {len(now_values)} run(s) and {len(then_values)} baseline run(s)"
    return Worsening(low, high, source, found.runs)


def _window_noise(metric: level_metrics.Metric, level: Level, bases: list[Level], then: float) -> Worsening:
    """One run each: how far apart the runs could be with nothing changed, by their stable windows."""
    now_low, now_high = metric.interval(level)
    then_low = min(metric.interval(base)[0] for base in bases)
    then_high = max(metric.interval(base)[1] for base in bases)
    if metric.higher_is_better:
        low, high = (then_low - now_high) / then, (then_high - now_low) / then
    else:
        low, high = (now_low - then_high) / then, (now_high - then_low) / then
    noise = (
        f"one run each, noise from their windows: baseline {show_value(metric, then_low)}–"
        f"{show_value(metric, then_high)}, run {show_value(metric, now_low)}–{show_value(metric, now_high)}"
    )
    return Worsening(low, high, noise, 1)


def _verdict(
    limit: Limit, label: str, measured: str, expected: str, change: float, worse: Worsening, kind: str
) -> Outcome:
    """Regression, pass or inconclusive, in words that say which and why."""
    bound = f"the {limit.fraction:.0%} limit"
    said = f"{change:+.1%} ({worse.shown()}; {worse.source})"
    if worse.low > limit.fraction:
        return Outcome(
            limit.text, kind, label, FAILED, measured, expected, f"regression: {said}, entirely beyond {bound}"
        )
    if worse.high <= limit.fraction:
        if worse.high < -limit.fraction:
            why = f"improvement: {said}, entirely better than {bound} the other way"
        else:
            why = f"within {bound}: {said}"
        return Outcome(limit.text, kind, label, PASSED, measured, expected, why)
    needed = _runs_to_decide(worse, limit.fraction)
    advice = (
        f"about {needed} runs a side would likely decide it (--repeats {needed})"
        if needed
        else "more runs may not decide it: the change sits on the limit"
    )
    why = f"inconclusive: {said} straddles {bound}, within noise; {advice}"
    return Outcome(limit.text, kind, label, INCONCLUSIVE, measured, expected, why)


def _runs_to_decide(worse: Worsening, limit: float) -> int | None:
    from perfprobe.measure.intervals import Interval, repeats_to_decide

    centre = (worse.low + worse.high) / 2
    return repeats_to_decide(Interval(centre, worse.low, worse.high, max(worse.runs, 2), "mean"), limit, sides=2)


def against_history(run: SweepRun, database: str | Path, limits: list[Limit]) -> list[Outcome]:
    """Every limit at every level against the run's history: the comparable runs (same model, protocol,
    endpoint, transport, batch and load kind) since the last change point of that figure's series.

    A level with fewer than two earlier runs is skipped with the reason: a first CI run has no history.
    """
    from perfprobe.history import changes, store

    match = store.matching(run)
    own = str(run.path.resolve())
    outcomes = []
    for limit in limits:
        text = f"{limit.metric.name} vs history (max {limit.fraction:.0%} worse)"
        named = Limit(limit.metric, limit.fraction, text)
        for level in run.levels:
            past = [old for old in store.series(database, match, limit.metric.name, level.level) if old.path != own]
            if len(past) < 2:
                why = f"the history has {len(past)} comparable run(s) at this level: 2 at least are needed"
                outcomes.append(Outcome(text, "history", level.label, SKIPPED, "", "", why))
                continue
            start = changes.last_segment([old.values for old in past])
            segment = past[start:]
            since = f"runs {segment[0].label} to {segment[-1].label}" if len(segment) > 1 else segment[0].label
            found = judge_values(named, level, [v for old in segment for v in old.values], kind="history")
            detail = f"{found.detail}; baseline: the {len(segment)} run(s) since the last change ({since})"
            outcomes.append(replace(found, detail=detail))
    return outcomes
