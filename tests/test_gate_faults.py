"""Gates never pass on broken runs: all-error levels, zero baselines, nothing compared, other models."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RUN_SETTINGS, run_perfprobe

from perfprobe import exitcodes

DOCUMENTED_METRICS = (
    "throughput", "p50", "p90", "p95", "p99", "p99.9", "p(97.5)", "avg", "med", "min", "max", "error_rate",
    "errors", "server_queue", "server_compute_input", "server_compute_infer", "server_compute_output",
    "client_send", "client_recv", "network",
)  # fmt: skip


@pytest.fixture(scope="module")
def broken_runs(server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A run where every request failed (refuse_all), and a run of simple at a level no other run has."""
    root = tmp_path_factory.mktemp("broken")
    common = ("-u", server.http_url, "--shape", "INPUT0:4", "--no-report", *RUN_SETTINGS)
    failed = run_perfprobe("sweep", "-m", "refuse_all", *common, "--output-dir", str(root / "all_errors"))
    assert failed.returncode == exitcodes.SERVER_ERROR, failed.stderr
    other_level = run_perfprobe(
        "sweep", "-u", server.http_url, "-m", "simple", "--concurrency", "3", "--measurement-interval", "300",
        "--max-trials", "2", "--no-report", "--output-dir", str(root / "c3"),
    )  # fmt: skip
    assert other_level.returncode == 0, other_level.stderr
    return {"all_errors": root / "all_errors", "c3": root / "c3"}


def test_latency_thresholds_fail_where_every_request_failed(broken_runs) -> None:
    result = run_perfprobe("gate", str(broken_runs["all_errors"]), "-t", "p99<5ms", "-t", "avg<1s")
    assert result.returncode == exitcodes.GATE_FAILED, result.stdout
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failures) == 4 and all("no latency" in line for line in failures)  # 2 thresholds x 2 levels


def test_an_all_error_level_is_never_within_the_latency_budget(broken_runs) -> None:
    result = run_perfprobe("report", str(broken_runs["all_errors"]), "--latency-budget", "p99=1s")
    assert result.returncode == 0, result.stderr
    summary = (broken_runs["all_errors"] / "summary.md").read_text()
    budget_line = next(line for line in summary.splitlines() if "p99 ≤ 1 s" in line or "within" in line.lower())
    assert "c=" not in budget_line, budget_line


def test_error_rate_and_errors_limits_work(simple_runs) -> None:
    result = run_perfprobe(
        "gate", str(simple_runs["repeat"]), "--baseline", str(simple_runs["baseline"]),
        "--max-regression", "error_rate=1%,errors=10%",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error_rate vs baseline" in result.stdout and "errors vs baseline" in result.stdout


def test_errors_against_a_zero_baseline_fail(simple_runs, broken_runs) -> None:
    result = run_perfprobe(
        "gate", str(broken_runs["all_errors"]), "--baseline", str(simple_runs["baseline"]),
        "--max-regression", "errors=10%", "--allow-different-model",
    )  # fmt: skip
    assert result.returncode == exitcodes.GATE_FAILED, result.stdout
    assert "from zero" in result.stdout


def test_a_baseline_sharing_no_level_fails(simple_runs, broken_runs) -> None:
    result = run_perfprobe("gate", str(broken_runs["c3"]), "--baseline", str(simple_runs["baseline"]))
    assert result.returncode == exitcodes.GATE_FAILED, result.stdout
    assert "shares no load level" in result.stdout and "checks passed" not in result.stdout


def test_a_baseline_of_another_model_is_refused_unless_allowed(simple_runs, broken_runs) -> None:
    refused = run_perfprobe("gate", str(broken_runs["all_errors"]), "--baseline", str(simple_runs["baseline"]))
    assert refused.returncode == exitcodes.USAGE
    assert "--allow-different-model" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    diff = run_perfprobe("diff", str(simple_runs["baseline"]), str(broken_runs["all_errors"]))
    assert diff.returncode == exitcodes.USAGE and "another" not in diff.stdout
    assert "model" in diff.stderr


def test_every_documented_metric_works_in_thresholds_and_limits(simple_runs) -> None:
    thresholds = [arg for name in DOCUMENTED_METRICS for arg in ("-t", f"{name}>=0")]
    result = run_perfprobe("gate", str(simple_runs["baseline"]), *thresholds)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2 * len(DOCUMENTED_METRICS)  # two levels
    limits = ",".join(f"{name}=1000%" for name in DOCUMENTED_METRICS)
    result = run_perfprobe(
        "gate", str(simple_runs["repeat"]), "--baseline", str(simple_runs["baseline"]), "--max-regression", limits
    )
    # every name works as a limit; a figure that was 0 µs in the baseline (network time, on a busy machine) and
    # is not now is a regression "from zero" whatever the limit, rightly, so only that may fail here
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert all("(from zero)" in line for line in failed), result.stdout + result.stderr
    assert result.returncode == (6 if failed else 0), result.stdout + result.stderr
    assert all(f"{name} vs baseline" in result.stdout for name in DOCUMENTED_METRICS)
    assert "Traceback" not in result.stderr
