"""results.json has one owner and a versioned schema: runs written before it still load, report and gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_perfprobe

from perfprobe import exitcodes
from perfprobe.report import runfile
from perfprobe.report.build import write_report
from perfprobe.report.rundata import RunNotFound, load_compare, load_sweep
from perfprobe.runs.options import SweepOptions
from perfprobe.runs.plan import plan
from perfprobe.runs.target import Target

FIXTURES = Path(__file__).parent / "fixtures"
V1_SWEEP = FIXTURES / "sweep_v1"  # written by perfprobe before results.json had a schema version
V1_COMPARE = FIXTURES / "compare_v1"


def test_a_version_1_sweep_reads_with_todays_names() -> None:
    raw = json.loads((V1_SWEEP / "results.json").read_text())
    assert "schema_version" not in raw and "arguments" in raw  # really the old format
    run = load_sweep(V1_SWEEP)
    assert run.document["schema_version"] == runfile.SCHEMA_VERSION
    assert run.settings["protocol"] == "http" and run.settings["mode"] == "sync"
    assert run.settings["window_ms"] == 300 and run.settings["stability_windows"] == 2
    assert run.settings["embedded_server"] is True
    assert run.title == "simple, over http, sync mode"
    assert [level.level for level in run.levels] == [1.0, 2.0]


def test_the_settings_written_today_use_the_same_names_as_a_translated_old_run() -> None:
    target = Target("http", "localhost:8000", "http://localhost:8002/metrics", embedded=False)
    written = plan(SweepOptions(model="simple", concurrency="1:2", measurement_interval=300)).recorded(target)
    translated = runfile.settings_from_options(json.loads((V1_SWEEP / "results.json").read_text())["arguments"])
    assert set(translated) <= set(written)


def test_an_old_run_reports_and_gates(tmp_path: Path) -> None:
    run_dir = tmp_path / "old"
    shutil.copytree(V1_SWEEP, run_dir)
    report = write_report(run_dir)
    assert (run_dir / "summary.md").read_text().count("sync") >= 1
    assert any(path.name == "percentile_spectrum.png" for path in report.files)
    gate = run_perfprobe(
        "gate",
        str(run_dir),
        "--baseline",
        str(V1_SWEEP),
        "-t",
        "error_rate<0.01",
        "--max-regression",
        "throughput=50%,p99=50%",
        timeout=120,
    )  # fmt: skip  (limits wider than the one-run window noise of a run against itself)
    assert gate.returncode == exitcodes.OK, gate.stdout + gate.stderr


def test_an_old_compare_reads_and_reports(tmp_path: Path) -> None:
    run_dir = tmp_path / "old-compare"
    shutil.copytree(V1_COMPARE, run_dir)
    run = load_compare(run_dir)
    assert run.title == "identity over http, sync mode, load 1"
    assert set(run.table["Transport"]) == {"wire", "system shm"}
    write_report(run_dir)
    assert "identity" in (run_dir / "summary.md").read_text()


def test_a_document_from_a_newer_perfprobe_is_refused_plainly(tmp_path: Path) -> None:
    run_dir = tmp_path / "future"
    shutil.copytree(V1_SWEEP, run_dir)
    document = json.loads((run_dir / "results.json").read_text())
    document["schema_version"] = runfile.SCHEMA_VERSION + 1
    (run_dir / "results.json").write_text(json.dumps(document))
    with pytest.raises(RunNotFound, match="newer perfprobe"):
        load_sweep(run_dir)
