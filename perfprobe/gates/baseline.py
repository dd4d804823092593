"""Baseline comparison: two-sided, and blind to changes no bigger than the runs' own noise.

For each limited metric and each load level both runs measured, the relative change is
taken in the "worse" direction (lower throughput, higher latency). The allowance is the
larger of the user's limit and the noise: the spread, (max − min) / mean, of the metric
over the stable windows of either run. Worse by more than the allowance is a regression,
better by more than it an improvement (reported, never failed).
"""

from __future__ import annotations

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
        if fraction < 0:
            raise BadExpression(f"--max-regression {part!r}: a limit cannot be negative")
        limits.append(Limit(metric, fraction))
    return limits


def compare(run: SweepRun, baseline: SweepRun, limits: list[Limit]) -> list[Outcome]:
    outcomes = []
    for limit in limits:
        for level in run.levels:
            base = next((b for b in baseline.levels if (b.load_kind, b.level) == (level.load_kind, level.level)), None)
            if base is None:
                outcomes.append(
                    Outcome(limit.text, "baseline", level.label, SKIPPED, "", "", "the baseline has no such level")
                )
                continue
            outcomes.append(_one(limit, level, base))
    return outcomes


def _one(limit: Limit, level: Level, base: Level) -> Outcome:
    metric = limit.metric
    now, then = metric.value(level), metric.value(base)
    noise = max(level_metrics.spread(metric.windows(level)), level_metrics.spread(metric.windows(base)))
    allowance = max(limit.fraction, noise)
    measured = f"{show_value(metric, then)} → {show_value(metric, now)}"
    if then == 0:
        change_text = "baseline is 0"
        worse = 0.0 if now == 0 else (1.0 if not metric.higher_is_better else -1.0)
    else:
        change = (now - then) / then
        change_text = f"{change:+.1%}"
        worse = -change if metric.higher_is_better else change
    why = f"{change_text}; noise {noise:.1%}, allowed {allowance:.1%}"
    expected = f"no more than {allowance:.1%} worse"
    if worse > allowance:
        return Outcome(limit.text, "baseline", level.label, FAILED, measured, expected, f"regression: {why}")
    verdict = "improvement" if -worse > allowance else "within limits"
    return Outcome(limit.text, "baseline", level.label, PASSED, measured, expected, f"{verdict}: {why}")
