"""The seams: a protocol added as one module (a fake, tests/fake_toy_transport.py) runs a whole sweep, and a
figure declared once reaches the CSV, results.json, the summary, the charts and the gates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import perfprobe
from perfprobe.gates import thresholds
from perfprobe.gates.outcome import FAILED, PASSED
from perfprobe.report import level_metrics
from perfprobe.report.figures import FIGURES, Figure, declare
from perfprobe.report.rundata import load_sweep
from perfprobe.transport import protocols


@pytest.fixture(scope="module")
def toy() -> object:
    import fake_toy_transport  # its import is its registration

    return fake_toy_transport


def test_a_toy_transport_runs_a_full_sweep(toy: object, tmp_path: Path) -> None:
    assert "toy" in protocols()
    result = perfprobe.sweep(
        "fake_echo", protocol="toy", concurrency="1:2", measurement_interval=300, stability_percentage=100
    )  # fmt: skip
    result.save(tmp_path, report=True)
    levels = result.levels
    assert list(levels["Concurrency"]) == [1, 2]
    assert (levels["Inferences/Second"] > 0).all()
    # drained windows: the fake server's own count of each level's reported windows equals the client's
    for level in result.level_results:
        for window in level.windows:
            assert window.drained
            assert window.stats.completed == window.server["fake_echo"].success_count > 0
    written = pd.read_csv(tmp_path / "results.csv")
    assert list(written["Concurrency"]) == [1, 2]
    run = json.loads((tmp_path / "results.json").read_text())
    assert run["settings"]["protocol"] == "toy"
    assert (tmp_path / "summary.md").exists()


def test_a_toy_transport_refuses_what_it_does_not_declare(toy: object) -> None:
    with pytest.raises(perfprobe.UsageError, match=r"--mode stream needs gRPC \(Toy \(fake\) does not offer it\)"):
        perfprobe.sweep("fake_echo", protocol="toy", concurrency="1", mode="stream")
    with pytest.raises(perfprobe.UsageError, match="--workers greenlet drives HTTP and gRPC only; toy runs on thread"):
        perfprobe.sweep("fake_echo", protocol="toy", concurrency="1", workers="greenlet", measurement_interval=100)


@pytest.fixture
def fake_figure() -> Iterator[Figure]:
    """Fake: a test-only figure, declared in this one place (half the throughput, to have a value to check)."""
    figure = declare(
        Figure(
            "Fake Half Throughput",
            "infer/s",
            lambda facts: round(facts.merged.throughput(facts.batch_size) / 2, 2),
            gate="fake_half",
            higher_is_better=True,
            summary="fake half",
            chart="Fake figures",
        )
    )
    yield figure
    FIGURES.remove(figure)


def test_a_figure_declared_once_reaches_csv_json_summary_charts_and_gates(
    toy: object, fake_figure: Figure, tmp_path: Path
) -> None:
    result = perfprobe.sweep("fake_echo", protocol="toy", concurrency="2", measurement_interval=300)
    result.save(tmp_path, report=True)
    csv_row = pd.read_csv(tmp_path / "results.csv").iloc[0]
    assert csv_row["Fake Half Throughput"] == pytest.approx(csv_row["Inferences/Second"] / 2, abs=0.01)
    assert list(pd.read_csv(tmp_path / "results.csv").columns)[-3:] == ["Stable", "Windows", "Warnings"]
    json_row = json.loads((tmp_path / "results.json").read_text())["levels"][0]["row"]
    assert json_row["Fake Half Throughput"] == csv_row["Fake Half Throughput"]
    summary = (tmp_path / "summary.md").read_text()
    assert "fake half" in summary and "charts/figures-fake_figures.png" in summary
    assert (tmp_path / "charts" / "figures-fake_figures.png").stat().st_size > 0
    run = load_sweep(tmp_path)
    half = csv_row["Fake Half Throughput"]
    [passed] = thresholds.check(run, thresholds.parse(f"fake_half>{half * 0.9:.2f}"))
    [failed] = thresholds.check(run, thresholds.parse(f"fake_half>{half * 1.1:.2f}"))
    assert (passed.status, failed.status) == (PASSED, FAILED)
    assert "fake_half" in level_metrics.known_names()


def test_a_figure_cannot_be_declared_twice() -> None:
    with pytest.raises(ValueError, match="already declared"):
        declare(Figure("Inferences/Second", "infer/s", lambda facts: 0))
