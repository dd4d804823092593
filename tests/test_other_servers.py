"""Every command against real KServe ModelServer and Seldon MLServer processes, over HTTP and gRPC.

Neither server has Triton's extensions (no model configuration, no statistics, no shared
memory) and neither lists its model's inputs, so perfprobe takes them from --input-data.
Each server's model counts what it served: a sweep's requests (its windows, warm-ups and the
request that checked the tensor format) must equal that count exactly, with no error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_perfprobe
from other_servers import launch

KINDS = ("kserve", "mlserver")
TITLES = {"kserve": "kserve 0.21.0", "mlserver": "mlserver 1.7.1"}
SERVER_COLUMNS = (
    "Network+Server Send/Recv",
    "Server Queue",
    "Server Compute Input",
    "Server Compute Infer",
    "Server Compute Output",
    "Avg Batch Size",
    "Server Success",
    "Server CPU Util",
)
QUICK = ("--measurement-interval", "400", "--max-trials", "4", "--stability-percentage", "60")


@pytest.fixture(scope="module", params=KINDS)
def other(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[launch.OtherServer]:
    missing = launch.missing_venv(request.param)
    if missing:
        pytest.skip(missing)
    server = launch.start(request.param, tmp_path_factory.mktemp(request.param))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """perf_analyzer's JSON format: content and shape per input, no datatype (read from the values)."""
    path = tmp_path_factory.mktemp("data") / "simple.json"
    item = {"INPUT0": {"content": list(range(16)), "shape": [1, 16]}, "INPUT1": {"content": [1] * 16, "shape": [1, 16]}}
    path.write_text(json.dumps({"data": [item]}))
    return path


def _requests_sent(document: dict) -> int:
    """Every request of the run the server answered: all windows, every warm-up, the format check."""
    total = document["settings"]["checked_requests"]
    for level in document["levels"]:
        for window in [*level["windows"], level["warmup"]]:
            total += window["completed"] + sum(window["errors"].values())
    return total


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_sweep_counts_what_the_server_served_and_leaves_server_figures_empty(
    other: launch.OtherServer, protocol: str, data_file: Path, tmp_path: Path
) -> None:
    before = other.served()
    out = tmp_path / "run"
    done = run_perfprobe(
        "sweep", "-i", protocol, "-u", other.url(protocol), "-m", "simple", "--input-data", str(data_file),
        "--concurrency", "1:16:x4", "--output-dir", str(out), *QUICK,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    served = other.served() - before
    document = json.loads((out / "results.json").read_text())
    assert _requests_sent(document) == served
    assert [level["level"] for level in document["levels"]] == [1, 4, 16]
    reason = f"the server ({TITLES[other.kind]}) has no statistics extension"
    for level in document["levels"]:
        row = level["row"]
        assert row["Errors"] == 0 and row["Completed"] > 0
        assert all(row[column] == "" for column in SERVER_COLUMNS), {c: row[c] for c in SERVER_COLUMNS}
        assert level["server_unmeasured"] == reason
        assert f"server figures not measured: {reason}" in row["Warnings"]
    csv_rows = (out / "results.csv").read_text().splitlines()
    header = csv_rows[0].split(",")
    queue = header.index("Server Queue")
    assert all(line.split(",")[queue] == "" for line in csv_rows[1:])
    assert document["server"]["name"] == other.kind
    assert document["server"]["probed"] == {"model_configuration": False, "statistics": False}
    assert "the server lists no inputs; sending INPUT0 INT32 [1, 16], INPUT1 INT32 [1, 16]" in done.stderr
    # MLServer refuses Triton's binary tensors over HTTP and takes JSON values; KServe takes binary
    expected = "json" if (other.kind, protocol) == ("mlserver", "http") else "binary"
    formats = document["settings"]["tensor_format"]
    assert formats is None if protocol == "grpc" else formats == {"input": expected, "output": expected}
    assert ("refused binary tensor data" in done.stderr) == (expected == "json")
    assert (out / "summary.md").exists()

    gate = run_perfprobe("gate", str(out), "-t", "server_queue<1us", "-t", "p99<60s")
    assert gate.returncode == 6, gate.stdout + gate.stderr
    assert f"server_queue: not measured: {reason}" in gate.stdout
    assert gate.stdout.count("PASSED  p99<60s") == 3
    diff = run_perfprobe("diff", str(out), str(out))
    assert diff.returncode == 0, diff.stderr
    assert "server_queue" not in diff.stdout  # a figure neither run has is left out, not shown as 0


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_describe_and_infer(other: launch.OtherServer, protocol: str, data_file: Path) -> None:
    described = run_perfprobe("describe", "-i", protocol, "-u", other.url(protocol), "-m", "simple")
    assert described.returncode == 0, described.stderr
    assert "inputs: none listed by the server" in described.stdout
    assert f"server: {TITLES[other.kind]}" in described.stdout
    assert "statistics            no" in described.stdout
    before = other.served()
    answered = run_perfprobe(
        "infer", "-i", protocol, "-u", other.url(protocol), "-m", "simple", "--input-data", str(data_file)
    )
    assert answered.returncode == 0, answered.stderr
    assert "OUTPUT0: INT32 shape=[1, 16] first=[1, 2, 3, 4, 5, 6, 7, 8]" in answered.stdout
    assert "OUTPUT1: INT32 shape=[1, 16] first=[-1, 0, 1, 2, 3, 4, 5, 6]" in answered.stdout
    assert other.served() - before == 1


def test_compare_measures_the_wire_and_skips_shared_memory_in_one_line(
    other: launch.OtherServer, data_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "compare"
    done = run_perfprobe(
        "compare", "-u", other.http_url, "-m", "simple", "--input-data", str(data_file), "--concurrency", "2",
        "--output-dir", str(out), *QUICK,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    title = TITLES[other.kind]
    assert f"system shm: skipped (the server ({title}) has no system shared-memory extension)" in done.stdout
    rows = (out / "compare.csv").read_text().splitlines()
    assert rows[1].startswith("wire,") and len(rows) == 4
    assert rows[2].startswith("system shm,") and rows[2].endswith(
        f"the server ({title}) has no system shared-memory extension"
    )


def test_mistakes_get_one_line(other: launch.OtherServer, data_file: Path) -> None:
    url = other.http_url
    no_inputs = run_perfprobe("sweep", "-u", url, "-m", "simple", "--concurrency", "1")
    assert no_inputs.returncode == 2
    assert no_inputs.stderr.strip().count("\n") == 0
    assert "does not say which inputs it takes" in no_inputs.stderr and "--input-data" in no_inputs.stderr
    untyped = run_perfprobe("sweep", "-u", url, "-m", "simple", "--shape", "INPUT0:1,16", "--shape", "INPUT1:1,16")
    assert untyped.returncode == 2 and "add it to --shape (INPUT0:1,16:INT32" in untyped.stderr
    misspelled = run_perfprobe("sweep", "-u", url, "-m", "simpel", "--input-data", str(data_file))
    assert misspelled.returncode == 4
    assert misspelled.stderr.strip().endswith("the server has: simple")
    shm = run_perfprobe("sweep", "-u", url, "-m", "simple", "--input-data", str(data_file), "--shared-memory", "system")
    assert shm.returncode == 2
    assert f"the server ({TITLES[other.kind]}) has no system shared-memory extension" in shm.stderr
    assert shm.stderr.strip().count("\n") == 1  # the note on the inputs, then the refusal


def test_shapes_with_datatypes_describe_the_inputs(other: launch.OtherServer, tmp_path: Path) -> None:
    before = other.served()
    out = tmp_path / "shaped"
    done = run_perfprobe(
        "sweep", "-i", "grpc", "-u", other.grpc_url, "-m", "simple", "--shape", "INPUT0:1,16:INT32",
        "--shape", "INPUT1:1,16:INT32", "--input-data", "zero", "--concurrency", "2", "--output-dir", str(out), *QUICK,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads((out / "results.json").read_text())
    assert document["levels"][0]["row"]["Errors"] == 0
    assert _requests_sent(document) == other.served() - before


def test_a_streaming_mode_is_checked_with_one_request_first(other: launch.OtherServer, data_file: Path) -> None:
    """KServe has no ModelStreamInfer (refused, exit 2); MLServer's needs a streaming model (its reason, exit 4)."""
    done = run_perfprobe(
        "sweep", "-i", "grpc", "-u", other.grpc_url, "-m", "simple", "--input-data", str(data_file),
        "--mode", "stream", "--concurrency", "1",
    )  # fmt: skip
    last = done.stderr.strip().splitlines()[-1]
    if other.kind == "kserve":
        assert done.returncode == 2, done.stderr
        assert last.endswith("has no gRPC streaming (ModelStreamInfer); use --mode sync or async")
    else:
        assert done.returncode == 4, done.stderr
        assert "--mode stream: the first request on a gRPC stream failed" in last
    assert done.stderr.strip().count("\n") == 1  # the note on the inputs, then the one line
