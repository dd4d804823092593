"""perfprobe compare against the real server: matrix CSV, verdicts, chart, skipped CUDA."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import run_perfprobe

from perfprobe.errors import UsageError
from perfprobe.units import human, parse_size


def test_sizes() -> None:
    assert parse_size("64KiB") == 65536 and parse_size("4MiB") == 4 << 20 and parse_size("1000") == 1000
    assert human(65536) == "64 KiB" and human(3) == "3 B"
    with pytest.raises(UsageError):
        parse_size("lots")


def test_compare_wire_and_system_shm(server, tmp_path: Path) -> None:
    result = run_perfprobe(
        "compare",
        "-m",
        "identity",
        "-u",
        server.http_url,
        "--sizes",
        "16KiB,256KiB",
        "--concurrency",
        "1",
        "--measurement-interval",
        "300",
        "--stability-windows",
        "2",
        "--max-trials",
        "2",
        "--output-dir",
        str(tmp_path),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    with (tmp_path / "compare.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    measured = [(r["Transport"], int(r["Tensor Bytes"])) for r in rows if not r["Skipped"]]
    assert sorted(measured) == sorted([(t, s) for t in ("wire", "system shm") for s in (16384, 262144)])
    assert all(float(r["Inferences/Second"]) > 0 and r["Errors"] == "0" for r in rows if not r["Skipped"])
    cuda_rows = [r for r in rows if r["Transport"] == "CUDA shm"]
    assert len(cuda_rows) == 1 and cuda_rows[0]["Skipped"]  # listed with its reason, never dropped
    verdicts = (tmp_path / "verdict.txt").read_text().splitlines()
    # one run: the speed-up at the level, and no interval
    assert any(line.startswith("system shm is ") and "the wire at 16 KiB, load 1 (one run" in line for line in verdicts)
    assert any(line.startswith("CUDA shm: skipped (") for line in verdicts)
    assert (tmp_path / "charts" / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "system shm" in (tmp_path / "summary.md").read_text()


def test_compare_chart_series(server, tmp_path: Path) -> None:
    """The compare chart holds one line per measured transport, and the report lists CUDA as skipped."""
    from perfprobe.report import charts
    from perfprobe.report.rundata import load_run

    result = run_perfprobe(
        "compare", "-m", "identity", "-u", server.http_url, "--sizes", "4KiB,64KiB", "--concurrency", "1",
        "--measurement-interval", "200", "--stability-windows", "2", "--max-trials", "2",
        "--output-dir", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = load_run(tmp_path)
    left, right = charts.compare_transports(run).axes
    assert [line.get_label() for line in left.get_lines()] == ["wire", "system shm"]
    assert all(list(line.get_xdata()) == [4096, 65536] for line in left.get_lines())
    assert [line.get_label() for line in right.get_lines()] == ["system shm", "the wire"]
    assert "CUDA shm" in run.skipped and "CUDA shm" in (tmp_path / "summary.md").read_text()


class _FakeCell:
    """A cell's per-run throughputs at one level, as ``SweepResult.run_values`` gives them (a fake for the speed-up)."""

    def __init__(self, *rates: float) -> None:
        self.rates = list(rates)

    def run_values(self, position: int, column: str) -> list[float]:
        assert (position, column) == (0, "Inferences/Second")
        return self.rates


def test_a_speed_up_pairs_each_run_with_the_wires_run_beside_it() -> None:
    from perfprobe.runs.compare import _speed_up

    paired = _speed_up(_FakeCell(300.0, 330.0), 0, _FakeCell(100.0, 110.0), 0)
    assert (paired["Speed-up"], paired["Speed-up CI low"], paired["Speed-up CI high"]) == (3.0, 3.0, 3.0)
    # an interrupt left shared memory a run short: its one run over the wire's run beside it (300/100),
    # not over the wire's mean of two (300/150)
    assert _speed_up(_FakeCell(300.0), 0, _FakeCell(100.0, 200.0), 0) == {"Speed-up": 3.0}
    assert _speed_up(_FakeCell(300.0), 0, _FakeCell(0.0), 0) == {"Speed-up": ""}  # no wire rate: no ratio
