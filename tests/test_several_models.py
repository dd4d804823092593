"""Several models at once (``-m A -m B@c=1``) against the real server: per-model figures from the same windows."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from conftest import assert_model_rates, run_perfprobe

import perfprobe
from perfprobe import exitcodes


@pytest.fixture(scope="module")
def two_models(server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """simple swept over c=1,2 while fixed_delay (25 ms a request) is held at c=3, above the sweep's top."""
    out = tmp_path_factory.mktemp("two-models")
    done = run_perfprobe(
        "sweep", "-u", server.http_url, "-m", "simple", "-m", "fixed_delay@c=3", "--shape", "INPUT0:16",
        "--concurrency", "1:2", "--measurement-interval", "300", "--max-trials", "3", "--output-dir", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_each_model_has_rows_and_the_server_agrees_per_window(two_models: Path) -> None:
    combined, by_model = _rows(two_models / "results.csv"), _rows(two_models / "results-by-model.csv")
    assert len(combined) == 2
    assert [(r["Model"], r["Concurrency"]) for r in by_model] == [
        ("simple", "1"),
        ("fixed_delay", "3"),
        ("simple", "2"),
        ("fixed_delay", "3"),  # held at its own level while the sweep moved
    ]
    # each request takes at least 25 ms, so three in flight cannot pass 3 / 25 ms = 120/s however idle the
    # machine (a lower bound would be a rate a loaded machine may miss: the level's 3 is checked above)
    assert all(0 < float(r["Inferences/Second"]) <= 1.02 * 3 / 0.025 for r in by_model if r["Model"] == "fixed_delay")
    for index, row in enumerate(combined):
        mine = by_model[2 * index : 2 * index + 2]
        assert all(int(r["Completed"]) > 0 and r["Errors"] == "0" for r in mine)
        assert int(row["Completed"]) == sum(int(r["Completed"]) for r in mine)
        assert int(row["Server Success"]) == sum(int(r["Server Success"]) for r in mine)
        assert all(r["Server Success"] == r["Completed"] for r in mine)  # drained windows: exact, per model
        assert row["Server Queue"] == "" and all(r["Server Queue"] != "" for r in mine)
        # every request over the window's span, which includes the slowest model's drain (25 ms in 300)
        total = sum(float(r["Inferences/Second"]) for r in mine)
        assert 0.85 * total <= float(row["Inferences/Second"]) <= 1.01 * total
    document = json.loads((two_models / "results.json").read_text())
    assert [m["name"] for m in document["settings"]["models"]] == ["simple", "fixed_delay"]
    for level in document["levels"]:
        for window_index, window in enumerate(level["windows"]):
            parts = {name: entry["windows"][window_index] for name, entry in level["models"].items()}
            assert window["completed"] == sum(part["completed"] for part in parts.values())
            for name, part in parts.items():
                assert set(part["server"]) == {name}
                assert part["server"][name]["counts"]["success"] == part["completed"], (name, window_index)


def test_gate_scoped_to_one_model(two_models: Path) -> None:
    passing = run_perfprobe("gate", str(two_models), "--threshold", "throughput@model=fixed_delay>1")
    assert passing.returncode == exitcodes.OK, passing.stdout + passing.stderr
    assert passing.stdout.count("PASSED") == 2  # fixed_delay at both of the sweep's levels
    failing = run_perfprobe("gate", str(two_models), "--threshold", "p99@model=simple@c=2<1us")
    assert failing.returncode == exitcodes.GATE_FAILED
    assert "FAILED  p99@model=simple@c=2<1us at c=2" in failing.stdout
    unknown = run_perfprobe("gate", str(two_models), "--threshold", "p99@model=resnet50<5ms")
    assert unknown.returncode == exitcodes.GATE_FAILED
    assert "model 'resnet50' was not loaded in this run (simple, fixed_delay)" in unknown.stdout
    # the combined rows have no server breakdown: a gate on it fails as not measured, never passes on a blank
    combined = run_perfprobe("gate", str(two_models), "--threshold", "server_queue<1s")
    assert combined.returncode == exitcodes.GATE_FAILED
    assert "not measured" in combined.stdout and "scope it with @model=NAME" in combined.stdout
    scoped = run_perfprobe("gate", str(two_models), "--threshold", "server_queue@model=simple<1s")
    assert scoped.returncode == exitcodes.OK, scoped.stdout


def test_report_has_each_models_table_and_charts(two_models: Path) -> None:
    summary = (two_models / "summary.md").read_text()
    assert "### Model simple\n" in summary and "### Model fixed_delay (held at c=3 throughout)" in summary
    charts = {path.name for path in (two_models / "charts").glob("*.png")}
    assert {"models.png", "latency_breakdown--simple.png", "latency_breakdown--fixed_delay.png"} <= charts
    assert "latency_breakdown.png" not in charts  # the combined level has no one server breakdown


def test_library_open_loop_holds_each_models_rate(server) -> None:
    result = perfprobe.sweep(
        ["simple", "identity@rate=40"],
        url=server.http_url,
        request_rate="80",
        shape=["INPUT0:16"],
        measurement_interval=1000,  # 40 answers a window: one stall of the shared 2 cores costs a few percent, not 20
        max_trials=2,
    )
    rows = result.levels_by_model.set_index("Model")
    assert rows.loc["simple", "Inferences/Second"] == pytest.approx(80, rel=0.15)
    assert rows.loc["identity", "Inferences/Second"] == pytest.approx(40, rel=0.15)
    assert rows.loc["identity", "Request Rate"] == 40
    assert result.levels["Inferences/Second"][0] == pytest.approx(120, rel=0.15)


@pytest.mark.parametrize(
    ("models", "extra", "message"),
    [
        (["simple", "identity@rate=5"], {}, "a request rate for one model needs a sweep of that kind"),
        (["simple", "simple@c=2"], {}, "named twice"),
        (["simple@c=2", "identity"], {}, "the first model follows the sweep's levels"),
        (
            ["simple", "identity"],
            {"concurrency": None, "request_trace": '{"timestamp_ms": 0}\n{"timestamp_ms": 10}\n'},
            "give the others a rate of their own (-m identity@rate=R)",
        ),
        (["simple", "identity@c=0"], {}, "the level must be a whole number above 0"),
        (["simple", "identity@speed=2"], {}, "is not c=N, rate=R or data=FILE"),
        (["simple", "identity@data=/no/such/file"], {}, "not zero, random, or an existing file"),
    ],
)
def test_refused_before_any_load(models: list[str], extra: dict[str, object], message: str, tmp_path: Path) -> None:
    from perfprobe.errors import UsageError
    from perfprobe.runs.options import SweepOptions
    from perfprobe.runs.plan import plan

    if "request_trace" in extra:  # the file's text, written where the option can read it
        trace = tmp_path / "trace.jsonl"
        trace.write_text(str(extra["request_trace"]))
        extra = {**extra, "request_trace": str(trace)}
    with pytest.raises(UsageError, match=re.escape(message)):
        plan(SweepOptions(**{"model": models, "concurrency": "1", **extra}))  # type: ignore[arg-type]


@pytest.mark.parametrize("processes", [1, 2])
def test_an_intervals_file_drives_the_first_model_while_another_keeps_its_own_rate(
    server, tmp_path: Path, processes: int
) -> None:
    intervals = tmp_path / "intervals.txt"
    intervals.write_text("2000\n6000\n" * 4)  # 4 ms apart on average: 250 requests/s
    result = perfprobe.sweep(
        ["simple", "identity@rate=100"],
        url=server.http_url,
        request_intervals=str(intervals),
        shape=["INPUT0:16"],
        processes=processes,
        measurement_interval=2000,
        stability_windows=2,
        max_trials=2,
    )
    level = result.level_results[0]
    assert_model_rates(level, {"simple": 250.0, "identity": 100.0})


def test_an_ensembles_composing_models_figures_are_kept(server, tmp_path: Path) -> None:
    """Alone and as one of several models, an ensemble's server figures come from its composing model."""
    alone = perfprobe.sweep(
        "echo_ensemble",
        url=server.http_url,
        concurrency="1",
        shape=["INPUT0:4"],
        measurement_interval=300,
        max_trials=2,
    )
    assert alone.document["model"]["composing_models"] == ["request_echo"]
    assert float(alone.rows[0]["Server Compute Infer"]) > 0
    for window in alone.level_results[0].windows:
        assert window.server["request_echo"].success_count == window.stats.completed > 0
    done = run_perfprobe(
        "sweep", "-u", server.http_url, "-m", "echo_ensemble", "-m", "simple", "--shape", "INPUT0:16",
        "--concurrency", "1", "--measurement-interval", "300", "--max-trials", "2", "--no-report",
        "--output-dir", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    level = json.loads((tmp_path / "results.json").read_text())["levels"][0]
    ensemble = level["models"]["echo_ensemble"]
    assert float(ensemble["row"]["Server Compute Infer"]) > 0
    for window in ensemble["windows"]:
        assert set(window["server"]) == {"echo_ensemble", "request_echo"}
        assert window["server"]["request_echo"]["counts"]["success"] == window["completed"] > 0


def test_a_yaml_list_names_the_models(tmp_path: Path) -> None:
    from perfprobe.cli import build_parser
    from perfprobe.commands.config_file import apply_config
    from perfprobe.runs.options import SweepOptions
    from perfprobe.runs.plan import plan

    config = tmp_path / "several.yaml"
    config.write_text("model: [simple, 'identity@c=2,data=zero']\nconcurrency: '1:4'\n")
    argv = ["sweep", "--config", str(config)]
    parser = build_parser()
    args = apply_config(parser, parser.parse_args(argv), argv)
    parts = plan(SweepOptions.from_namespace(args)).parts
    assert [(p.name, p.level, p.input_data) for p in parts] == [("simple", None, None), ("identity", 2.0, "zero")]


def test_repeated_runs_give_each_model_its_estimates_and_intervals(server, tmp_path: Path) -> None:
    """--repeats with several models: each model's row is its runs' estimate with a 95% interval that holds
    every run's own figure for that model (results-by-model.csv and ``levels_by_model`` alike)."""
    from perfprobe.report.results import model_row

    result = perfprobe.sweep(
        ["simple", "identity@c=1"], url=server.http_url, concurrency="1", shape=["INPUT0:16"], repeats=2,
        measurement_interval=200, max_trials=2, stability_windows=2, output_dir=str(tmp_path), no_report=True,
    )  # fmt: skip
    by_model = result.levels_by_model.set_index("Model")
    written = {row["Model"]: row for row in _rows(tmp_path / "results-by-model.csv")}
    for name in ("simple", "identity"):
        runs = [model_row(run.for_model(name, 1), 1)["Inferences/Second"] for run in result.runs[0]]
        low, high = by_model.loc[name, "Inferences/Second CI low"], by_model.loc[name, "Inferences/Second CI high"]
        assert len(runs) == 2 and all(low <= value <= high for value in runs), (runs, low, high)
        # the runs' mean (of the unrounded figures: each run's row is rounded to 0.01)
        assert by_model.loc[name, "Inferences/Second"] == pytest.approx(sum(runs) / 2, abs=0.011), runs
        assert float(written[name]["Inferences/Second CI low"]) == low
