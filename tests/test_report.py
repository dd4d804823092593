"""perfprobe report and diff on real sweeps: figure objects, image files, summaries."""

from __future__ import annotations

import csv
import struct
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from conftest import run_perfprobe
from matplotlib.container import BarContainer

from perfprobe.report import charts
from perfprobe.report.build import write_report
from perfprobe.report.figures import breakdown_parts
from perfprobe.report.rundata import RunNotFound, load_sweep
from perfprobe.report.summary import LatencyBudget


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def _axis_unit_us(axis) -> float:
    """Microseconds per unit of a latency axis, read from its label: the chart picks µs or ms."""
    label = axis.get_ylabel()
    assert "(ms)" in label or "(µs)" in label, label
    return 1000.0 if "(ms)" in label else 1.0


def test_sweep_writes_its_report(simple_runs) -> None:
    """sweep ran the report itself: charts as PNG of the figure's size and as SVG, summary and page."""
    run_dir = simple_runs["baseline"]
    stems = ("throughput_vs_p99", "latency_breakdown", "percentile_spectrum", "levels")
    for stem in stems:
        width, height = png_size(run_dir / "charts" / f"{stem}.png")
        assert (width, height) == ((1200, 500) if stem == "levels" else (1000, 550))
        assert ElementTree.parse(run_dir / "charts" / f"{stem}.svg").getroot().tag.endswith("svg")
    page = (run_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(stems)  # self-contained: no links to files
    summary = (run_dir / "summary.md").read_text()
    assert "peak throughput" in summary and "unstable levels" in summary and "triton" in summary


def test_figures_hold_one_series_per_level(simple_runs, tmp_path: Path) -> None:
    run = load_sweep(simple_runs["baseline"])
    levels = len(run.levels)
    assert levels == 2

    scatter = charts.throughput_vs_latency(run)
    (line,) = scatter.axes[0].get_lines()
    assert list(line.get_ydata()) == pytest.approx(list(run.table["Inferences/Second"].astype(float)))
    assert [t.get_text() for t in scatter.axes[0].texts] == ["c=1", "c=2"]

    breakdown = charts.latency_breakdown(run)
    bars = [c for c in breakdown.axes[0].containers if isinstance(c, BarContainer)]
    assert len(bars) == len(breakdown_parts()) and all(len(b.patches) == levels for b in bars)
    stacked = sum(bar.patches[0].get_height() for bar in bars)
    parts = sum(float(run.table.iloc[0][column]) for column, _ in breakdown_parts())
    assert stacked * _axis_unit_us(breakdown.axes[0]) == pytest.approx(parts, rel=1e-6)
    assert len(breakdown.axes) == 2 and len(breakdown.axes[1].get_lines()) == 1  # throughput, 2nd axis

    spectrum = charts.percentile_spectrum([(lv.label, lv) for lv in run.levels], "t")
    lines = spectrum.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["c=1", "c=2"]
    for ln, level in zip(lines, run.levels, strict=True):
        y = ln.get_ydata()
        assert all(a <= b for a, b in zip(y, y[1:], strict=False))  # latency never falls as percentile rises
        at_two_nines = y[list(ln.get_xdata()).index(min(ln.get_xdata(), key=lambda x: abs(x - 2.0)))]
        expected = level.histogram.percentile_us(99.0)
        assert at_two_nines * _axis_unit_us(spectrum.axes[0]) == pytest.approx(expected, rel=0.1)

    curves = charts.level_curves([run])
    assert [len(axis.get_lines()) for axis in curves.axes] == [1, 1]

    report = write_report(run.path, chart_dir_name="again", dpi=50)
    assert set(report.figures) == {"throughput_vs_p99", "latency_breakdown", "percentile_spectrum", "levels"}
    assert png_size(run.path / "again" / "levels.png") == (600, 250)


def test_latency_budget_names_the_highest_load(simple_runs) -> None:
    run_dir = simple_runs["slow"]  # 3 ms per execution: c=1 near 4 ms p99, c=2 near 8 ms
    run = load_sweep(run_dir)
    p99 = [lv.histogram.percentile_us(99.0) for lv in run.levels]
    budget_us = (min(p99) + max(p99)) / 2
    expected = max((lv for lv, v in zip(run.levels, p99, strict=True) if v <= budget_us), key=lambda lv: lv.level)
    write_report(run_dir, LatencyBudget("p99", budget_us))
    summary = (run_dir / "summary.md").read_text()
    named = summary.split("highest load within p99")[1].splitlines()[0]
    assert f"{expected.label}," in named
    write_report(run_dir, LatencyBudget("p99", 1.0))
    assert "none of the levels" in (run_dir / "summary.md").read_text()


def test_report_command(simple_runs, tmp_path: Path) -> None:
    result = run_perfprobe("report", str(simple_runs["repeat"]), "--latency-budget", "p95=1s")
    assert result.returncode == 0, result.stderr
    assert (
        "summary.md" in result.stdout
        and "highest load within p95 ≤ 1.00 s" in (simple_runs["repeat"] / "summary.md").read_text()
    )
    missing = run_perfprobe("report", str(tmp_path / "nothing"))
    assert missing.returncode == 7 and missing.stderr.count("\n") == 1 and "no such run" in missing.stderr
    bad = run_perfprobe("report", str(simple_runs["repeat"]), "--latency-budget", "soon")
    assert bad.returncode == 2 and bad.stderr.startswith("perfprobe: error: --latency-budget")


def test_run_not_found(tmp_path: Path) -> None:
    (tmp_path / "results.csv").write_text("x\n")
    with pytest.raises(RunNotFound):
        load_sweep(tmp_path)


def test_diff(simple_runs, tmp_path: Path) -> None:
    result = run_perfprobe(
        "diff", str(simple_runs["baseline"]), str(simple_runs["slow"]), "--output-dir", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    with (tmp_path / "diff.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    by_key = {(r["Level"], r["Metric"]): r for r in rows}
    assert {level for level, _ in by_key} == {"c=1", "c=2"}
    for level in ("c=1", "c=2"):
        throughput, p99 = by_key[(level, "throughput")], by_key[(level, "p99")]
        assert float(throughput["Change %"]) < -50 and throughput["Better"] == "A"  # 3 ms per request
        assert float(p99["Change"]) > 2000 and p99["Better"] == "A"
    for stem in ("diff_levels", "diff_spectrum"):
        assert png_size(tmp_path / f"{stem}.png")[0] > 0 and (tmp_path / f"{stem}.svg").is_file()


def test_diff_overlays_hold_both_runs(simple_runs, tmp_path: Path) -> None:
    from perfprobe.report.diff import overlay_charts

    a, b = load_sweep(simple_runs["baseline"]), load_sweep(simple_runs["repeat"])
    figures = overlay_charts(a, b, tmp_path)
    assert [len(axis.get_lines()) for axis in figures["diff_levels"].axes] == [2, 2]
    styles = [line.get_linestyle() for line in figures["diff_spectrum"].axes[0].get_lines()]
    assert styles == ["-", "-", "--", "--"]  # A solid, B dashed, one per shared level
