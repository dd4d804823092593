"""``perfprobe report``'s work: charts (PNG + SVG), summary.md and report.html for one run directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from perfprobe.report import charts, render, summary
from perfprobe.report.figures import charted
from perfprobe.report.rundata import CompareRun, SweepRun, load_run


@dataclass
class Report:
    """What was written, and the figures behind the charts (kept for inspection and tests)."""

    directory: Path
    files: list[Path] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)


def write_report(
    run_dir: str | Path,
    budget: summary.LatencyBudget | None = None,
    chart_dir_name: str = "charts",
    dpi: int = 100,
) -> Report:
    """Charts and summaries into the run directory (charts under ``chart_dir_name``)."""
    run = load_run(run_dir)
    report = Report(Path(run_dir))
    chart_dir = report.directory / chart_dir_name
    if isinstance(run, CompareRun):
        _compare_charts(run, chart_dir, report, dpi)
        blocks = summary.compare_blocks(run, _captions(report))
        title = f"perfprobe compare {run.name}"
    else:
        _sweep_charts(run, chart_dir, report, dpi)
        blocks = summary.sweep_blocks(run, _captions(report), budget or summary.budget_from_run(run))
        title = f"perfprobe sweep {run.title}"
    markdown_path = report.directory / "summary.md"
    markdown_path.write_text(render.markdown(blocks, report.directory))
    html_path = report.directory / "report.html"
    html_path.write_text(render.html_page(blocks, title))
    report.files += [markdown_path, html_path]
    return report


_CAPTIONS = {
    "throughput_vs_p99": "Throughput against p99 latency, one point per load level",
    "latency_breakdown": "Mean latency by component at each level, throughput on the right axis",
    "percentile_spectrum": "Latency by percentile (HdrHistogram nines scale), one line per level",
    "levels": "Throughput and p99 latency by load level",
    "models": "Each model's throughput and p99 latency by the sweep's load level (several models at once)",
    "compare": "Peak throughput by tensor size per transport, and speed-up over the wire",
}


def _captions(report: Report) -> list[tuple[Path, str]]:
    return [(path, _caption(path.stem)) for path in report.files if path.suffix == ".png"]


def _slug(title: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in title.lower()).strip("_")


def _caption(stem: str) -> str:
    if stem.startswith("figures-"):
        return next(title for title in charted() if _slug(title) == stem[len("figures-") :]) + ", by load level"
    chart, _, model = stem.partition("--")  # a chart of one model of several: latency_breakdown--simple
    return f"{_CAPTIONS[chart]} — {model}" if model else _CAPTIONS[chart]


def _add(report: Report, chart_dir: Path, stem: str, figure: object, dpi: int) -> None:
    report.figures[stem] = figure
    report.files += charts.save(figure, chart_dir, stem, dpi)  # type: ignore[arg-type]


def _sweep_charts(run: SweepRun, chart_dir: Path, report: Report, dpi: int) -> None:
    if not run.levels:
        return
    _add(report, chart_dir, "throughput_vs_p99", charts.throughput_vs_latency(run), dpi)
    models = [run.for_model(name) for name in run.model_names]
    if not models:  # with several models the server's breakdown is each model's own
        _add(report, chart_dir, "latency_breakdown", charts.latency_breakdown(run), dpi)
    spectrum = charts.percentile_spectrum(
        [(level.label, level) for level in run.levels], f"Latency by percentile — {run.title}"
    )
    _add(report, chart_dir, "percentile_spectrum", spectrum, dpi)
    _add(report, chart_dir, "levels", charts.level_curves([run]), dpi)
    for title, shown in charted().items():  # a declared figure's own chart against the level, where it has values
        if not any(run.has_values(figure.column) for figure in shown):
            continue
        _add(report, chart_dir, f"figures-{_slug(title)}", charts.declared_figures(run, title, shown), dpi)
    if models:
        _add(report, chart_dir, "models", charts.level_curves(models, title=f"Each model — {run.title}"), dpi)
        for part in models:
            if part.levels:
                _add(report, chart_dir, f"latency_breakdown--{part.name}", charts.latency_breakdown(part), dpi)


def _compare_charts(run: CompareRun, chart_dir: Path, report: Report, dpi: int) -> None:
    if run.table.empty:
        return
    _add(report, chart_dir, "compare", charts.compare_transports(run), dpi)
