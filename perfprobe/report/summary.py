"""What a run's summary says: server, model, settings, peak, budget, errors, unstable levels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from perfprobe.measure.intervals import METHODS
from perfprobe.report import level_metrics
from perfprobe.report.figures import FIGURES, Figure, interval_in
from perfprobe.report.render import Block, Facts, Heading, Image, Paragraph, Table
from perfprobe.report.rundata import SHORT_KIND, CompareRun, Level, SweepRun
from perfprobe.units import format_us, human

SETTING_KEYS = (
    ("protocol", "protocol"),
    ("mode", "mode"),
    ("worker_kind", "worker kind"),
    ("grpc_transport", "gRPC transport"),
    ("processes", "load processes"),
    ("cluster", "Ray cluster"),
    ("hosts", "load hosts"),
    ("load_kind", "load"),
    ("level_spec", "levels"),
    ("distribution", "distribution"),
    ("batch_size", "batch size"),
    ("shapes", "shapes"),
    ("input_data", "input data"),
    ("shared_memory", "shared memory"),
    ("tensor_format", "HTTP tensors"),
    ("window_mode", "window"),
    ("window_ms", "window (ms)"),
    ("window_requests", "window (requests)"),
    ("stability_percentage", "stability (%)"),
    ("stability_windows", "stability windows"),
    ("max_windows", "max windows per level"),
)


@dataclass(frozen=True)
class LatencyBudget:
    """The latency a service must stay under, at a percentile: "highest load under 5 ms p99"."""

    metric: str
    limit_us: float

    def describe(self) -> str:
        return f"{self.metric} ≤ {format_us(self.limit_us)}"


def parse_budget(text: str | None) -> LatencyBudget | None:
    """``5ms`` or ``p95=2ms`` → LatencyBudget; UsageError naming the option otherwise."""
    from perfprobe.errors import UsageError
    from perfprobe.units import parse_duration_us

    if not text:
        return None
    name, _, amount = text.rpartition("=")
    name = name or "p99"
    try:
        metric = level_metrics.metric(name)
        if metric.kind != "latency":
            raise KeyError(f"{name!r} is not a latency")
        return LatencyBudget(metric.name, parse_duration_us(amount))
    except (KeyError, ValueError) as exc:
        raise UsageError(f"--latency-budget {text!r}: {exc.args[0]}") from None


def budget_from_run(run: SweepRun) -> LatencyBudget | None:
    """The sweep's own latency threshold (on its stability latency), when it had one."""
    threshold = run.settings.get("latency_threshold_ms")
    if threshold is None:
        return None
    key = run.settings.get("stability_latency") or "mean"
    return LatencyBudget("avg" if key == "mean" else key, float(threshold) * 1000)


def highest_within(run: SweepRun, budget: LatencyBudget) -> Level | None:
    metric = level_metrics.metric(budget.metric)
    inside = [level for level in run.levels if level.has_latency and metric.value(level) <= budget.limit_us]
    return max(inside, key=lambda level: level.level) if inside else None


def sweep_blocks(run: SweepRun, charts: list[tuple[Path, str]], budget: LatencyBudget | None) -> list[Block]:
    doc = run.document
    settings = run.settings
    where = settings.get("url") or ("embedded" if settings.get("embedded_server") else "?")
    blocks: list[Block] = [Heading(f"perfprobe sweep: {run.title}", 1)]
    blocks.append(
        Facts(
            [
                ("server", f"{run.server} at {where}"),
                ("model", f"{run.model} (config digest {doc.get('model', {}).get('config_digest', '?')})"),
                ("run", f"{doc.get('started_at', '?')} → {doc.get('finished_at', 'unfinished')}"),
                ("perfprobe", str(doc.get("perfprobe_version", "?"))),
            ]
        )
    )
    blocks += [Heading("Findings"), Facts(_findings(run, budget))]
    blocks += [Heading("Settings"), Facts(_settings(settings))]
    blocks += [Heading("Levels"), _level_table(run)]
    for part in settings.get("models") or []:  # several models at once: each one's own table and server figures
        held = f" (held at {SHORT_KIND[run.load_kind]}={part['level']:g} throughout)" if part.get("level") else ""
        blocks += [Heading(f"Model {part['name']}{held}", 3), _level_table(run.for_model(part["name"]))]
    blocks.append(Heading("Charts"))
    blocks += [Image(path, caption) for path, caption in charts]
    return blocks


def _findings(run: SweepRun, budget: LatencyBudget | None) -> list[tuple[str, str]]:
    if not run.levels:
        return [("levels", "none measured")]
    throughput = level_metrics.metric("throughput")
    peak = max(run.levels, key=throughput.value)
    facts = [
        (
            "peak throughput",
            f"{throughput.value(peak):,.1f} inferences/s at {peak.label} "
            + (
                f"(p99 {format_us(level_metrics.metric('p99').value(peak))})"
                if peak.has_latency
                else "(no successful request)"
            ),
        )
    ]
    if budget is not None:
        best = highest_within(run, budget)
        facts.append(
            (
                f"highest load within {budget.describe()}",
                f"{best.label}, {throughput.value(best):,.1f} inferences/s" if best else "none of the levels",
            )
        )
    errors = int(sum(level_metrics.metric("errors").value(level) for level in run.levels))
    failing = [f"{lv.label} ({lv.row.get('Error Rate')})" for lv in run.levels if float(lv.row.get("Errors", 0))]
    facts.append(("errors", f"{errors:,}" + (f" — error rate at {', '.join(failing)}" if failing else "")))
    runs = max((len(level.runs) for level in run.levels), default=0)
    if runs > 1:
        facts.append(
            (
                "runs",
                f"{runs} of every level, in turn; figures are their estimates with 95% intervals in brackets "
                f"({METHODS['mean']}; for percentiles, {METHODS['median']})",
            )
        )
    unstable = [level.label for level in run.levels if not level.stable]
    facts.append(("unstable levels", ", ".join(unstable) if unstable else "none"))
    warnings = sorted({w for level in run.levels for w in level.warnings})
    if warnings:
        facts.append(("warnings", "; ".join(warnings)))
    return facts


def _settings(settings: dict) -> list[tuple[str, str]]:
    facts = []
    for key, label in SETTING_KEYS:
        value = settings.get(key)
        if value in (None, "", [], False):
            continue
        if isinstance(value, dict):  # {"input": "json", "output": "binary"}
            text = ", ".join(f"{side} {shown}" for side, shown in value.items())
        else:
            text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        facts.append((label, text))
    return facts


_COMPUTE = ("Server Compute Input", "Server Compute Infer", "Server Compute Output")


def _level_table(run: SweepRun) -> Table:
    """The levels, with every figure declared with a summary heading that some level has (a run without
    tokens shows no token columns; a server without statistics keeps its empty ones, "–", with the reason
    in its warnings); ``compute`` after the server queue sums the three compute parts."""
    shown = [figure for figure in FIGURES if figure.summary and (figure.from_server or run.has_values(figure.column))]
    header = ["level"]
    for figure in shown:
        header += [figure.summary, "compute"] if figure.column == "Server Queue" else [figure.summary]
    rows = []
    for level in run.levels:
        cells = [level.label]
        for figure in shown:
            cells.append(_cell(figure, level.row))
            if figure.column == "Server Queue":
                absent = level.row.get(figure.column, "") == ""
                cells.append("–" if absent else format_us(sum(float(level.row.get(c) or 0) for c in _COMPUTE)))
        rows.append([*cells, "yes" if level.stable else "no"])
    return Table([*header, "stable"], rows)


def _cell(figure: Figure, row: dict) -> str:
    """A figure's cell as people read it; after repeated runs, with its 95% interval."""
    shown = _shown(figure.unit, row.get(figure.column, ""))
    found = interval_in(row, figure.column) if figure.across_runs and shown != "–" else None
    return f"{shown} ({_shown(figure.unit, found[0])}–{_shown(figure.unit, found[1])})" if found else shown


def _shown(unit: str, value: object) -> str:
    """A cell in ``unit`` as people read it; "–" where it is empty (or NaN once read as a number)."""
    if value in ("", None):
        return "–"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "–"
    if unit == "us":
        return format_us(number)
    if unit in ("infer/s", "1/s"):
        return f"{number:,.1f}"
    if unit == "count":
        return f"{number:.0f}"
    return f"{number:g}"


def compare_blocks(run: CompareRun, charts: list[tuple[Path, str]]) -> list[Block]:
    blocks: list[Block] = [Heading(f"perfprobe compare: {run.title}", 1)]
    blocks.append(Facts([("server", str(run.about.get("url", "?"))), ("run", run.name)]))
    blocks += [Heading("Verdict"), *(Paragraph(line) for line in run.verdicts)]
    missing = [
        f"{name}: skipped ({reason})"
        for name, reason in run.skipped.items()
        if not any(line.startswith(f"{name}:") for line in run.verdicts)
    ]
    if missing:
        blocks.append(Paragraph("; ".join(missing)))
    header = ["transport", "tensor", "load", "infer/s", "p50", "p99", "compute input", "compute output", "errors"]
    rows = [
        [
            str(r["Transport"]),
            human(int(r["Tensor Bytes"])),
            str(r["Load"]),
            f"{float(r['Inferences/Second']):,.1f}",
            *(_shown("us", r[column]) for column in ("p50 latency", "p99 latency")),
            *(_shown("us", r[column]) for column in ("Server Compute Input", "Server Compute Output")),
            str(r["Errors"]),
        ]
        for r in run.table.to_dict("records")
    ]
    blocks += [Heading("Matrix"), Table(header, rows), Heading("Charts")]
    blocks += [Image(path, caption) for path, caption in charts]
    return blocks
