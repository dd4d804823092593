"""Threshold expressions as k6 users write them, checked against every level (or one).

Grammar: ``METRIC[@KIND=LEVEL][@model=NAME] OP VALUE``, e.g. ``p99<5ms``, ``p(99.9)<20ms``,
``throughput>800``, ``error_rate<0.01``, ``error_rate<1%``, ``server_queue<1ms``,
``p99@c=8<5ms``, ``throughput@rate=200>=190``, ``p99@model=A<5ms`` (one model of a run that
loaded several; its levels are the sweep's). OP is one of ``< <= > >=``. Latency values take
``us``/``ms``/``s`` (a bare number is milliseconds, as in k6).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from perfprobe.gates.outcome import FAILED, INCONCLUSIVE, PASSED, Outcome
from perfprobe.measure.intervals import repeats_to_decide
from perfprobe.report import level_metrics
from perfprobe.report.rundata import SHORT_KIND, Level, SweepRun
from perfprobe.units import format_us, parse_duration_us, parse_fraction

_EXPRESSION = re.compile(
    r"^\s*(?P<metric>[a-z_][a-z0-9_.]*(?:\(\s*[0-9.]+\s*\))?)"
    r"(?P<scopes>(?:\s*@\s*[a-z_]+\s*=\s*[A-Za-z0-9_.\-]+)*)"
    r"\s*(?P<op><=|>=|<|>)\s*(?P<value>[^\s<>=]+)\s*$",
    re.IGNORECASE,
)
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_SCOPE = re.compile(r"@\s*([a-z_]+)\s*=\s*([A-Za-z0-9_.\-]+)", re.IGNORECASE)
_SCOPES = {"c": "concurrency", "concurrency": "concurrency", "rate": "rate", "r": "rate", "request_rate": "rate"}


class BadExpression(ValueError):
    """A threshold that cannot be read; the message says which and why."""


@dataclass(frozen=True)
class Threshold:
    text: str
    metric: level_metrics.Metric
    op: str
    limit: float  # in the metric's base unit (µs for latencies)
    scope_kind: str | None = None
    scope_level: float | None = None
    scope_model: str | None = None  # one model of several loaded at once

    def passes(self, value: float) -> bool:
        return _OPERATORS[self.op](value, self.limit)

    def show(self, value: float) -> str:
        return show_value(self.metric, value)


def show_value(metric: level_metrics.Metric, value: float) -> str:
    if metric.kind == "latency":
        return format_us(value)
    if metric.kind == "throughput":
        return f"{value:,.1f} infer/s"
    if metric.kind == "ratio":
        return f"{value:.4g}"
    return f"{value:g}"


def parse(text: str) -> Threshold:
    match = _EXPRESSION.match(text)
    if not match:
        raise BadExpression(
            f"threshold {text!r}: expected METRIC[@c=N][@model=NAME] OP VALUE, e.g. p99<5ms or throughput>800"
        )
    try:
        metric = level_metrics.metric(match["metric"])
    except KeyError as exc:
        raise BadExpression(f"threshold {text!r}: {exc.args[0]}") from None
    scope_kind = scope_level = scope_model = None
    for key, value in _SCOPE.findall(match["scopes"]):
        if key.lower() == "model" and scope_model is None:
            scope_model = value
            continue
        scope_kind = _SCOPES.get(key.lower()) if scope_kind is None else None
        if scope_kind is None:
            raise BadExpression(f"threshold {text!r}: scope must be @c=N, @rate=N and/or @model=NAME, each once")
        try:
            scope_level = float(value)
        except ValueError:
            raise BadExpression(f"threshold {text!r}: {value!r} is not a load level") from None
    limit = _limit(text, metric, match["value"])
    return Threshold(text.strip(), metric, match["op"], limit, scope_kind, scope_level, scope_model)


def _limit(text: str, metric: level_metrics.Metric, value: str) -> float:
    try:
        if metric.kind == "latency":
            return parse_duration_us(value)
        limit = parse_fraction(value)
    except ValueError as exc:
        raise BadExpression(f"threshold {text!r}: {exc}") from None
    if not math.isfinite(limit):
        raise BadExpression(f"threshold {text!r}: the limit must be a finite number")
    return limit


def check(run: SweepRun, threshold: Threshold) -> list[Outcome]:
    """One outcome per level in scope; a scoped level the run lacks fails (it was not measured)."""
    wanted = f"{threshold.op} {threshold.show(threshold.limit)}"
    if threshold.scope_model is not None:
        try:
            run = run.for_model(threshold.scope_model)
        except KeyError as exc:
            return [Outcome(threshold.text, "threshold", "", FAILED, "not measured", wanted, exc.args[0])]
    if threshold.scope_kind is not None:
        scoped = run.level(threshold.scope_level, threshold.scope_kind)
        if scoped is None:
            label = f"{SHORT_KIND[threshold.scope_kind]}={threshold.scope_level:g}"
            return [
                Outcome(threshold.text, "threshold", label, FAILED, "not measured", wanted, "no such level in the run")
            ]
        levels = [scoped]
    else:
        levels = run.levels
    outcomes = []
    for level in levels:
        if threshold.metric.kind == "latency" and not level.has_latency:
            why = "every request failed: a level without a successful request has no latency"
            outcomes.append(Outcome(threshold.text, "threshold", level.label, FAILED, "no latency", wanted, why))
            continue
        value = threshold.metric.value(level)
        if level_metrics.absent(value):
            why = f"the run has no {threshold.metric.name} at this level" + (
                " (several models: scope it with @model=NAME)" if run.model_names else ""
            )
            if level.server_unmeasured and level_metrics.from_server(threshold.metric.name):
                why = f"{threshold.metric.name}: not measured: {level.server_unmeasured}"
            outcomes.append(Outcome(threshold.text, "threshold", level.label, FAILED, "not measured", wanted, why))
            continue
        outcomes.append(_judged(threshold, level, value, wanted))
    return outcomes


def _judged(threshold: Threshold, level: Level, value: float, wanted: str) -> Outcome:
    """Pass or fail by the figure; after repeated runs by its 95% interval: entirely on the limit's good
    side passes, entirely on its bad side fails, across it is inconclusive."""
    found = threshold.metric.over_runs(level)
    if found is None:
        status = PASSED if threshold.passes(value) else FAILED
        return Outcome(threshold.text, "threshold", level.label, status, threshold.show(value), wanted)
    shown = f"{threshold.show(found.point)} (95% CI {threshold.show(found.low)}–{threshold.show(found.high)})"
    low_passes, high_passes = threshold.passes(found.low), threshold.passes(found.high)
    if low_passes and high_passes:
        return Outcome(threshold.text, "threshold", level.label, PASSED, shown, wanted)
    if not low_passes and not high_passes:
        return Outcome(
            threshold.text, "threshold", level.label, FAILED, shown, wanted, "the whole interval is beyond it"
        )
    needed = repeats_to_decide(found, threshold.limit)
    advice = f"about {needed} runs would likely decide it (--repeats {needed})" if needed else "it sits on the limit"
    why = f"inconclusive: the interval over {found.runs} runs straddles the limit, within noise; {advice}"
    return Outcome(threshold.text, "threshold", level.label, INCONCLUSIVE, shown, wanted, why)
