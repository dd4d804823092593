"""perfprobe from Python: ``perfprobe.sweep`` / ``perfprobe.compare`` against the real server."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_perfprobe

import perfprobe
from perfprobe import exitcodes
from perfprobe.report.results import columns

SETTINGS = {
    "concurrency": "1:2",
    "measurement_interval": 300,
    "stability_windows": 2,
    "max_trials": 4,
}
FLAGS = ["--concurrency", "1:2", "--measurement-interval", "300", "--stability-windows", "2", "--max-trials", "4"]


def _csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open() as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_sweep_from_python_matches_what_the_command_writes(server, tmp_path: Path, protocol: str) -> None:
    url = server.url(protocol)
    cli = run_perfprobe(
        "sweep", "-m", "simple", "-i", protocol, "-u", url, "--output-dir", str(tmp_path / "cli"), *FLAGS
    )
    assert cli.returncode == 0, cli.stderr
    cli_header, cli_rows = _csv_rows(tmp_path / "cli" / "results.csv")

    result = perfprobe.sweep("simple", url=url, protocol=protocol, **SETTINGS)
    levels = result.levels
    assert isinstance(levels, pd.DataFrame)
    assert list(levels.columns) == cli_header == columns("concurrency")  # perf_analyzer's columns first
    assert list(levels["Concurrency"]) == [int(r["Concurrency"]) for r in cli_rows] == [1, 2]
    for frame_row, cli_row in zip(levels.to_dict("records"), cli_rows, strict=True):
        # two runs of the same settings: the same figures, measured twice, with the same invariants
        assert frame_row["Errors"] == int(cli_row["Errors"]) == 0
        assert frame_row["Completed"] == frame_row["Server Success"] > 0
        assert int(cli_row["Completed"]) == int(cli_row["Server Success"]) > 0
        assert frame_row["p50 latency"] <= frame_row["p99 latency"]
    # histograms and server statistics are reachable, and agree with the table
    for level, row in zip(result.level_results, levels.to_dict("records"), strict=True):
        assert result.histograms[level.level].summary()["p99"] == row["p99 latency"]
        assert result.histograms[level.level].count == row["Completed"]
        assert result.server_statistics[level.level].success_count == row["Server Success"]

    saved = result.save(tmp_path / "lib")
    header, rows = _csv_rows(saved / "results.csv")
    assert header == list(levels.columns)
    assert pd.read_csv(saved / "results.csv", keep_default_na=False).astype(str).equals(levels.astype(str))
    assert (saved / "results.json").is_file()


def test_library_prints_nothing_and_tells_its_observer(server, capfd) -> None:
    seen: list[tuple[str, float]] = []

    class Recording(perfprobe.RunObserver):
        def window(self, level, record) -> None:
            seen.append(("window", level.level))

        def level_done(self, level) -> None:
            seen.append(("level", level.level))

    result = perfprobe.sweep("simple", url=server.http_url, observer=Recording(), **SETTINGS)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    assert [entry for entry in seen if entry[0] == "level"] == [("level", 1), ("level", 2)]
    assert sum(1 for entry in seen if entry[0] == "window") == sum(len(lv.windows) for lv in result.level_results)
    assert result.output_dir is None  # nothing written unless asked


def test_library_errors_are_exceptions_with_the_exit_codes_meaning(server) -> None:
    with pytest.raises(perfprobe.UsageError, match="--concurrency") as bad:
        perfprobe.sweep("simple", url=server.http_url, concurrency="4:1")
    assert bad.value.exit_code == exitcodes.USAGE
    with pytest.raises(perfprobe.UsageError, match="unknown sweep options: concurency"):
        perfprobe.sweep("simple", url=server.http_url, concurency="1")
    from perfprobe.client import InferenceServerError

    with pytest.raises(InferenceServerError) as unknown:
        perfprobe.sweep("no_such_model", url=server.http_url, **SETTINGS)
    assert not unknown.value.no_answer  # the server answered: exit 4 on the command line
    with pytest.raises(perfprobe.AllRequestsFailed) as refused:
        perfprobe.sweep("refuse_all", url=server.http_url, shape=["INPUT0:4"], **SETTINGS)
    assert refused.value.exit_code == exitcodes.SERVER_ERROR
    assert refused.value.result is not None and len(refused.value.result.levels) == 2  # what was measured


def test_compare_from_python_builds_its_matrix_from_the_sweeps(server, tmp_path: Path) -> None:
    result = perfprobe.compare(
        "identity",
        url=server.http_url,
        transports="none,system",
        sizes=["4KiB", "64KiB"],
        **{**SETTINGS, "concurrency": "1"},
    )
    table = result.table
    assert list(table["Transport"]) == ["wire", "system shm", "wire", "system shm"]
    assert list(table["Tensor Bytes"]) == [4096, 4096, 65536, 65536]
    for (transport, size), cell in result.cells.items():
        row = table[
            (table["Tensor Bytes"] == size) & (table["Transport"] == {"none": "wire"}.get(transport, "system shm"))
        ]
        assert float(row["Inferences/Second"].iloc[0]) == cell.rows[0]["Inferences/Second"]
    assert len(result.verdicts) == 2 and all(v.startswith("system shm is ") for v in result.verdicts)
    saved = result.save(tmp_path)
    assert pd.read_csv(saved / "compare.csv", keep_default_na=False)["Transport"].tolist() == list(table["Transport"])


def test_remote_model_and_greenlet_patching_are_one_import_away(server) -> None:
    from perfprobe import RemoteModel

    assert RemoteModel(f"http://{server.http_url}/simple").name == "simple"
    # importing perfprobe and parsing a command patches nothing; the call does, before ssl is in
    probe = (
        "import sys, perfprobe\n"
        "from perfprobe import cli\n"
        "cli.build_parser().parse_args(['sweep', '-m', 'simple'])\n"
        "assert 'ssl' not in sys.modules and 'gevent' not in sys.modules, 'imported too early'\n"
        "perfprobe.patch_for_greenlets()\n"
        "from gevent import monkey\n"
        "assert monkey.is_module_patched('socket') and monkey.is_module_patched('ssl')\n"
        "import threading, time\n"
        "assert not monkey.is_module_patched('threading')  # grpc's callbacks need real threads\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def _python_example(document: str, heading: str, server, tmp_path: Path, then: str) -> subprocess.CompletedProcess:
    """Run the first Python block under ``heading`` in ``document`` on the test server, with faster windows."""
    text = (Path(__file__).parent.parent / document).read_text()
    section = text[text.index(f"\n{heading}\n") :]
    example = section[section.index("```python\n") + len("```python\n") : section.index("```\n", 10)]
    example = example.replace("localhost:8000", server.http_url).replace(
        "measurement_interval=1000", "measurement_interval=300"
    )
    return subprocess.run(
        [sys.executable, "-c", example + "\n" + then], capture_output=True, text=True, timeout=240, cwd=tmp_path,
        check=False,
    )  # fmt: skip


def test_the_guides_python_example_runs(server, tmp_path: Path) -> None:
    done = _python_example(
        "docs/guide.md", "## Python API", server, tmp_path, "print(len(result.levels), len(matrix.table))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["4", "8"]
    assert (tmp_path / "reports" / "simple" / "report.html").is_file()


def test_the_readmes_python_example_runs(server, tmp_path: Path) -> None:
    done = _python_example("README.md", "## From Python", server, tmp_path, "print(len(result.levels))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "4"
    assert (tmp_path / "reports" / "simple" / "report.html").is_file()


@pytest.mark.parametrize(("transport", "default_kind"), [("h2", "greenlet"), ("grpcio", "asyncio")])
def test_grpc_streams_default_to_the_fastest_kind_and_leave_no_thread_behind(
    server, transport: str, default_kind: str
) -> None:
    import threading

    before = set(threading.enumerate())
    result = perfprobe.sweep(
        "simple", url=server.grpc_url, protocol="grpc", mode="stream", grpc_transport=transport, **SETTINGS
    )
    assert result.document["settings"]["worker_kind"] == default_kind
    assert result.document["settings"]["grpc_transport"] == (transport if default_kind != "asyncio" else None)
    assert all(row["Completed"] == row["Server Success"] > 0 for row in result.rows)
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("perfprobe")]
