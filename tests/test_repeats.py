"""Verdicts that know their noise: --repeats with 95% intervals, a three-way gate, compare verdicts with
intervals, and the run history, on runs of the real server (shifted copies where a known change is needed)."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import run_perfprobe
from shifted import THROUGHPUT, shifted_copy

from perfprobe import exitcodes
from perfprobe.gates import baseline
from perfprobe.gates.outcome import FAILED, INCONCLUSIVE, PASSED
from perfprobe.history import changes, store
from perfprobe.measure import intervals
from perfprobe.report.figures import interval_columns, with_intervals
from perfprobe.report.results import columns
from perfprobe.report.rundata import load_sweep

QUICK = ("--measurement-interval", "200", "--stability-windows", "2", "--max-trials", "3")


@pytest.fixture(scope="module")
def repeated(server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real sweep of ``simple`` at c=1 and c=2, each level measured in three runs."""
    out = tmp_path_factory.mktemp("repeated") / "run"
    result = run_perfprobe(
        "sweep", "-u", server.http_url, "-m", "simple", "--concurrency", "1:2", "--repeats", "3",
        "--output-dir", str(out), *QUICK,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "infer/s 95% CI" in result.stdout and "== run 3 of 3 ==" in result.stdout  # the console says them too
    return out


def test_intervals_hold_the_single_runs_they_came_from(repeated: Path) -> None:
    rows = list(csv.DictReader((repeated / "results.csv").open()))
    header = list(rows[0])
    assert header[: len(columns("concurrency"))] == columns("concurrency")  # perf_analyzer's columns keep places
    assert header == columns("concurrency", intervals=True)
    document = json.loads((repeated / "results.json").read_text())
    checked = 0
    for row, entry in zip(rows, document["levels"], strict=True):
        runs = entry["runs"]
        assert [run["run"] for run in runs] == [1, 2, 3]
        assert int(row["Completed"]) == sum(int(run["row"]["Completed"]) for run in runs)  # counts pool
        for figure in with_intervals():
            low, high = interval_columns(figure.column)
            if row[low] == "":
                assert all(run["row"][figure.column] in ("", None) for run in runs)  # a figure no run has
                continue
            bottom, top = float(row[low]), float(row[high])
            assert bottom <= float(row[figure.column]) <= top
            for run in runs:  # with three runs, a t-interval and the median's bootstrap reach every run
                assert bottom <= float(run["row"][figure.column]) <= top, (figure.column, run["row"])
            checked += 1
        assert {w["run"] for w in entry["windows"]} == {1, 2, 3}  # the windows say whose they are
        assert len(entry["windows"]) == sum(run["windows_measured"] for run in runs) == int(row["Windows"])
        pooled = [w for w in entry["windows"] if w["reported"]]  # every run's windows kept, the pooled marked
        assert sum(w["completed"] for w in pooled) == int(row["Completed"])
    assert checked >= 2 * 8  # throughput, the percentiles, the breakdown's parts at both levels
    summary = (repeated / "summary.md").read_text()
    assert "**runs:** 3 of every level" in summary and "t-interval" in summary


def test_runs_are_interleaved_level_by_level(repeated: Path) -> None:
    """The whole sweep again for each run: c=1 run 1, c=2 run 1, c=1 run 2 ... by results.json's own times."""
    document = json.loads((repeated / "results.json").read_text())
    order = sorted(
        (run["started_s"], entry["level"], run["run"]) for entry in document["levels"] for run in entry["runs"]
    )
    assert [(level, number) for _, level, number in order] == [(lv, n) for n in (1, 2, 3) for lv in (1.0, 2.0)]
    for entry in document["levels"]:
        for run in entry["runs"]:
            assert run["started_s"] < run["finished_s"]


def test_sweep_charts_draw_the_intervals(repeated: Path) -> None:
    from perfprobe.report import charts

    run = load_sweep(repeated)
    left, right = charts.level_curves([run]).axes[:2]
    bars = [c for c in left.containers if c.__class__.__name__ == "ErrorbarContainer"]
    assert len(bars) == 1
    segments = bars[0].lines[2][0].get_segments()  # one vertical bar per level: from CI low to CI high
    for segment, level in zip(segments, run.levels, strict=True):
        assert segment[0][1] == pytest.approx(float(level.row[f"{THROUGHPUT} CI low"]))
        assert segment[1][1] == pytest.approx(float(level.row[f"{THROUGHPUT} CI high"]))
    (axis,) = charts.throughput_vs_latency(run).axes
    (both,) = [c for c in axis.containers if c.__class__.__name__ == "ErrorbarContainer"]
    assert both.has_xerr and both.has_yerr  # p99's interval across, throughput's up and down


def _half_width(run_dir: Path, factor: float) -> float:
    """How wide (as a fraction of the baseline) the change's 95% interval is between this run's three runs and
    the same runs times ``factor``, at its widest level: Student's t with 4 degrees of freedom times the pooled
    spread, sqrt((s² + factor²·s²) / 2), times sqrt(2/3)."""
    widest = 0.0
    for level in load_sweep(run_dir).levels:
        values = [float(run.row[THROUGHPUT]) for run in level.run_levels()]
        mean = sum(values) / len(values)
        variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
        widest = max(widest, intervals.t_quantile(4) * (variance * (1 + factor**2) / len(values)) ** 0.5 / mean)
    return widest


def test_gate_is_three_way_where_the_known_shift_says(repeated: Path, tmp_path: Path) -> None:
    base = load_sweep(repeated)
    limit = 0.05
    bound = _half_width(repeated, 1.0)  # the widest for any factor up to 1
    assert bound > 0, "three runs of a real server never give the same throughput"

    far = max(1 - limit - 1.5 * bound, 0.02)
    slower = load_sweep(shifted_copy(repeated, tmp_path / "slower", far))
    verdicts = baseline.compare(slower, base, baseline.parse_limits(f"throughput={limit:.0%}"))
    assert [o.status for o in verdicts] == [FAILED, FAILED]
    assert all(o.detail.startswith("regression:") and "entirely beyond the 5% limit" in o.detail for o in verdicts)

    on_the_limit = load_sweep(shifted_copy(repeated, tmp_path / "on-limit", 1 - limit))
    verdicts = baseline.compare(on_the_limit, base, baseline.parse_limits(f"throughput={limit:.0%}"))
    assert [o.status for o in verdicts] == [INCONCLUSIVE, INCONCLUSIVE]
    assert all("straddles the 5% limit, within noise" in o.detail for o in verdicts)
    assert all("the change sits on the limit" in o.detail for o in verdicts)  # no number of runs would decide

    same = load_sweep(shifted_copy(repeated, tmp_path / "same", 1.0))
    wide = f"throughput={(bound * 1.2) * 100:.2f}%"
    assert [o.status for o in baseline.compare(same, base, baseline.parse_limits(wide))] == [PASSED, PASSED]

    codes = {
        name: run_perfprobe("gate", str(tmp_path / name), "--baseline", str(repeated), "--max-regression", limits)
        for name, limits in (("slower", "throughput=5%"), ("on-limit", "throughput=5%"), ("same", wide))
    }
    assert codes["slower"].returncode == exitcodes.GATE_FAILED, codes["slower"].stdout
    assert codes["on-limit"].returncode == exitcodes.GATE_INCONCLUSIVE, codes["on-limit"].stdout
    assert "gate inconclusive" in codes["on-limit"].stderr.strip().splitlines()[-1]
    assert codes["same"].returncode == exitcodes.OK, codes["same"].stdout + codes["same"].stderr


def test_thresholds_on_repeated_runs_judge_by_the_interval(repeated: Path) -> None:
    from perfprobe.gates import thresholds

    run = load_sweep(repeated)
    level = run.levels[0]
    low, high = (float(level.row[name]) for name in interval_columns(THROUGHPUT))
    check = thresholds.check
    assert check(run, thresholds.parse(f"throughput@c=1>{low * 0.99}"))[0].status == PASSED
    assert check(run, thresholds.parse(f"throughput@c=1>{high * 1.01}"))[0].status == FAILED
    if high > low:
        undecided = check(run, thresholds.parse(f"throughput@c=1>{(low + high) / 2}"))[0]
        assert undecided.status == INCONCLUSIVE and "95% CI" in undecided.measured


def test_compare_verdict_and_chart_agree(server, tmp_path: Path) -> None:
    from perfprobe.report import charts
    from perfprobe.report.rundata import load_run

    result = run_perfprobe(
        "compare", "-m", "identity", "-u", server.http_url, "--sizes", "64KiB", "--transports", "none,system",
        "--concurrency", "1", "--repeats", "2", "--output-dir", str(tmp_path), *QUICK,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "compare.csv").open()))
    shm = next(row for row in rows if row["Transport"] == "system shm")
    ratio, low, high = (float(shm[name]) for name in ("Speed-up", "Speed-up CI low", "Speed-up CI high"))
    assert low <= ratio <= high and shm["Runs"] == "2"
    verdict = (tmp_path / "verdict.txt").read_text().splitlines()[0]
    assert verdict.startswith(f"system shm is {ratio:.2f}x the wire at 64 KiB, load 1 (95% CI {low:.2f}-{high:.2f}")
    meaning = "faster" if low > 1 else "slower" if high < 1 else "not a clear difference"
    assert verdict.endswith(f"over 2 runs: {meaning})")
    right = charts.compare_transports(load_run(tmp_path)).axes[1]
    (bars,) = [c for c in right.containers if c.__class__.__name__ == "ErrorbarContainer"]
    assert bars.lines[0].get_ydata()[0] == pytest.approx(ratio)  # the chart's point is the verdict's
    (segment,) = bars.lines[2][0].get_segments()
    assert (segment[0][1], segment[1][1]) == (pytest.approx(low), pytest.approx(high))
    # interleaved: the wire's run 1, system shm's run 1, the wire's run 2, system shm's run 2
    starts = []
    for cell in ("none-65536", "system-65536"):
        (entry,) = json.loads((tmp_path / cell / "results.json").read_text())["levels"]
        starts += [(run["started_s"], cell, run["run"]) for run in entry["runs"]]
    assert [(cell, n) for _, cell, n in sorted(starts)] == [
        ("none-65536", 1), ("system-65536", 1), ("none-65536", 2), ("system-65536", 2),
    ]  # fmt: skip


def test_library_sweep_repeats(server) -> None:
    import perfprobe

    result = perfprobe.sweep(
        "simple", url=server.http_url, concurrency="1", repeats=2, measurement_interval=200, stability_windows=2,
        max_trials=2,
    )  # fmt: skip
    assert [len(runs) for runs in result.runs] == [2] and len(result.measured) == 2
    table = result.levels
    low, high = (float(table[name][0]) for name in interval_columns(THROUGHPUT))
    singles = [float(value) for value in result.run_values(0, THROUGHPUT)]
    assert low <= min(singles) and max(singles) <= high
    assert table[THROUGHPUT][0] == pytest.approx(sum(singles) / 2, abs=0.01)


# ---- the run history -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_runs(server, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Eight real runs of ``simple`` at c=1, each measured twice (--repeats 2), in the order they ran."""
    import perfprobe

    root = tmp_path_factory.mktemp("history")
    runs = []
    for number in range(8):
        out = root / f"run{number}"
        perfprobe.sweep(
            "simple", url=server.http_url, concurrency="1", repeats=2, output_dir=str(out), no_report=True,
            measurement_interval=150, stability_windows=2, max_trials=2,
        )  # fmt: skip
        runs.append(out)
    return runs


INTERLEAVED = (0, 7, 1, 6, 2, 5, 3, 4)  # no planted change: the machine's own drift spread across the series


def _percent_after(line: str, marker: str) -> float:
    """The percentage written right after the last ``marker`` in ``line``, as a fraction."""
    return float(line.rsplit(marker, 1)[1].split("%", 1)[0]) / 100


def _history(database: Path, runs: list[Path]) -> None:
    result = run_perfprobe("history", "add", *map(str, runs), "--db", str(database))
    assert result.returncode == 0, result.stderr


def test_history_detect_finds_a_planted_step_and_none_in_a_flat_series(real_runs, tmp_path: Path) -> None:
    ordered = [real_runs[i] for i in INTERLEAVED]
    flat, stepped = tmp_path / "flat.db", tmp_path / "step.db"
    _history(flat, ordered)
    # the same eight real runs, the last four with a 40% lower throughput from the fifth on
    planted = ordered[:4] + [shifted_copy(run, tmp_path / f"slow-{run.name}", 0.6) for run in ordered[4:]]
    _history(stepped, planted)

    found = run_perfprobe("history", "detect", "-m", "simple", "--metric", "throughput@c=1", "--db", str(stepped))
    assert found.returncode == 0, found.stderr
    (line,) = found.stdout.strip().splitlines()
    assert line.startswith("simple throughput@c=1: change at #5 "), line
    assert -0.55 < _percent_after(line, "(") < -0.25  # the medians of four real runs each side, one set at 60%
    quiet = run_perfprobe("history", "detect", "-m", "simple", "--metric", "throughput@c=1", "--db", str(flat))
    assert quiet.returncode == 0 and "no change point in 8 runs" in quiet.stdout, quiet.stdout + quiet.stderr
    series = store.series(stepped, {"model": "simple"}, "throughput", 1.0)
    assert [len(run.values) for run in series] == [2] * 8  # each run's two runs of the level
    assert [point.index for point in changes.change_points([run.values for run in series])] == [4]

    chart = tmp_path / "series.png"
    shown = run_perfprobe(
        "history", "show", "-m", "simple", "--metric", "p(99)@c=1", "--db", str(flat), "--chart", str(chart)
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == "simple p(99)@c=1: 8 runs" and chart.read_bytes()[:4] == b"\x89PNG"


def test_gate_against_history_uses_the_last_stable_segment(real_runs, tmp_path: Path) -> None:
    database = tmp_path / "history.db"
    older = [shifted_copy(run, tmp_path / f"old-{run.name}", 2.0) for run in real_runs[:4]]  # a faster past, changed
    _history(database, older + [real_runs[i] for i in INTERLEAVED])
    slower = shifted_copy(real_runs[0], tmp_path / "slower", 0.6)
    result = run_perfprobe(
        "gate",
        str(slower),
        "--against-history",
        str(database),
        "--history",
        str(database),
        "--max-regression",
        "throughput=5%",
    )
    assert result.returncode == exitcodes.GATE_FAILED, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("FAILED  throughput vs history"))
    # against the eight runs since the change, not the doubled ones before it: about -40%, not -70%
    assert -0.6 < _percent_after(line, "regression: ") < -0.2 and "the 8 run(s) since the last change" in line
    assert "history: run #13 added to" in result.stdout  # the gated run joins the history afterwards


def test_a_history_that_cannot_be_used_is_refused_whole(real_runs, tmp_path: Path) -> None:
    database = tmp_path / "history.db"
    _history(database, real_runs[:1])
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds it
    try:
        locked = run_perfprobe("history", "add", str(real_runs[1]), "--db", str(database))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert locked.returncode == exitcodes.NO_RESULTS
    assert locked.stderr.strip() == (
        f"perfprobe: error: history {database}: locked by another process (waited 2 s); nothing was written"
    )
    with sqlite3.connect(database) as reader:
        assert reader.execute("SELECT COUNT(*) FROM runs").fetchone() == (1,)

    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"not a database at all" * 100)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as foreign:
        foreign.execute("CREATE TABLE results (x)")
    before = {path: path.read_bytes() for path in (corrupt, other)}
    for path, says in ((corrupt, "not a perfprobe history"), (other, "another schema")):
        refused = run_perfprobe("history", "add", str(real_runs[1]), "--db", str(path))
        assert refused.returncode == exitcodes.NO_RESULTS and says in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert path.read_bytes() == before[path]  # nothing written, not even a schema
    missing = run_perfprobe("history", "show", "-m", "simple", "--metric", "p99@c=1", "--db", str(tmp_path / "no.db"))
    assert missing.returncode == exitcodes.NO_RESULTS and not (tmp_path / "no.db").exists()


@pytest.mark.parametrize(
    ("given", "watched"),
    [
        ({}, "mean"),
        ({"latency_budget": "5ms"}, "p99"),  # a budget's default figure is p99
        ({"latency_budget": "p95=2ms"}, "p95"),
        ({"latency_budget": "avg=2ms"}, "mean"),
        ({"latency_budget": "p99=2ms", "percentile": 50.0}, "p50"),  # said outright, it wins
    ],
)
def test_stability_watches_the_percentile_the_run_is_judged_by(given: dict, watched: str) -> None:
    """A run judged by its p99 within a budget must hold its levels until the p99 agrees, not the mean; the
    choice is recorded where gate's note reads it."""
    from perfprobe.runs.options import SweepOptions
    from perfprobe.runs.plan import plan
    from perfprobe.runs.target import Target

    made = plan(SweepOptions(model="simple", concurrency="1", **given))
    assert made.measure.stability.latency_key == watched
    target = Target("http", "localhost:8000", ("http://localhost:8002/metrics",), embedded=False)
    assert made.recorded(target)["stability_latency"] == watched


def test_diff_of_repeated_runs_says_better_only_beyond_noise(repeated: Path, tmp_path: Path) -> None:
    """diff with repeated runs: a drop in throughput well beyond the runs' own noise is "A better" with an
    interval around the known change that excludes no change; the same runs copied unchanged are "within
    noise", never A or B."""
    factor = max(1 - 1.5 * _half_width(repeated, 1.0), 0.02)  # beyond the widest interval (the gate test's)
    slower = shifted_copy(repeated, tmp_path / "slower", factor)
    same = shifted_copy(repeated, tmp_path / "same", 1.0)
    for other, out in ((slower, "vs-slower"), (same, "vs-same")):
        result = run_perfprobe("diff", str(repeated), str(other), "--output-dir", str(tmp_path / out))
        assert result.returncode == 0, result.stderr
        assert "change 95% CI" in result.stdout
    slower_rows = list(csv.DictReader((tmp_path / "vs-slower" / "diff.csv").open()))
    same_rows = list(csv.DictReader((tmp_path / "vs-same" / "diff.csv").open()))
    for row in (r for r in slower_rows if r["Metric"] == "throughput"):
        low, high = float(row["Change % CI low"]), float(row["Change % CI high"])
        assert low <= (factor - 1) * 100 <= high and high < 0, (factor, row)
        assert row["Better"] == "A" and row["Runs A"] == row["Runs B"] == "3"
    assert {row["Better"] for row in same_rows} <= {"within noise", "same"}, same_rows
    assert all(row["A"] == row["B"] == "0.0" for row in same_rows if row["Better"] == "same")  # no errors either side
    assert any(row["Better"] == "within noise" for row in same_rows if row["Metric"] == "throughput")
