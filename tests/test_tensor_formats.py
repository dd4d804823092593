"""``--input-tensor-format`` / ``--output-tensor-format``: HTTP tensors as binary data or as JSON values.

A relay in front of the real server keeps the traffic, so each test reads what went over the
wire, not what perfprobe says it sent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perfprobe import exitcodes
from tests.conftest import run_perfprobe
from tests.relay import Relay

COMMON = ("--concurrency", "1", "--measurement-interval", "300", "--max-trials", "3", "--no-report")
DTYPE_SHAPES = [
    flag
    for name in (
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "FP32",
        "FP64",
    )
    for flag in ("--shape", f"IN_{name}:4")
]


def _through_relay(server, out: Path, *flags: str) -> tuple[object, Relay]:
    host, port = server.http_url.rsplit(":", 1)
    relay = Relay((host.removeprefix("http://"), int(port)), keep=8 << 20)
    try:
        result = run_perfprobe("sweep", "-u", f"127.0.0.1:{relay.port}", *COMMON, "--output-dir", str(out), *flags)
    finally:
        relay.close()
    return result, relay


def _windows(out: Path) -> list[dict]:
    document = json.loads((out / "results.json").read_text())
    return [window for level in document["levels"] for window in level["windows"]]


@pytest.mark.parametrize("inputs", ["binary", "json"])
@pytest.mark.parametrize("outputs", ["binary", "json"])
def test_each_side_goes_over_the_wire_as_asked(server, tmp_path: Path, inputs: str, outputs: str) -> None:
    result, relay = _through_relay(
        server, tmp_path, "-m", "simple", "--input-tensor-format", inputs, "--output-tensor-format", outputs,
        "--decode-outputs",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["settings"]["tensor_format"] == {"input": inputs, "output": outputs}
    assert all(not window["errors"] for window in _windows(tmp_path)) and _windows(tmp_path)[-1]["completed"] > 0
    sent, received = bytes(relay.traffic_sent), bytes(relay.traffic_received)
    assert (b'"binary_data_size"' in sent) == (inputs == "binary")
    assert (b'"name":"INPUT0","shape":[1,16],"datatype":"INT32","data":[' in sent) == (inputs == "json")
    assert (b'"binary_data":false' in sent) == (outputs == "json")
    assert (b'"datatype":"INT32","shape":[1,16],"data":[' in received) == (outputs == "json")
    assert (b"inference-header-content-length" in received.lower()) == (outputs == "binary")
    if inputs == outputs == "json":  # the report says so, in its title and its settings
        assert run_perfprobe("report", str(tmp_path)).returncode == 0
        summary = (tmp_path / "summary.md").read_text()
        assert summary.splitlines()[0].endswith(", JSON inputs and outputs")
        assert "- **HTTP tensors:** input json, output json" in summary


def test_fp16_tensors_stay_binary_and_the_run_says_so(server, tmp_path: Path) -> None:
    """Triton refuses FP16 in JSON either way; the rest of the tensors still go as JSON values."""
    result, relay = _through_relay(
        server, tmp_path, "-m", "dtype_echo", *DTYPE_SHAPES, "--input-tensor-format", "json",
        "--output-tensor-format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "note: dtype_echo: inputs IN_FP16 (FP16) stay binary" in result.stderr
    assert "note: dtype_echo: outputs OUT_FP16 (FP16) stay binary" in result.stderr
    assert all(not window["errors"] for window in _windows(tmp_path))
    sent = bytes(relay.traffic_sent)
    assert b'"name":"IN_FP32","shape":[4],"datatype":"FP32","data":[' in sent
    assert b'"name":"IN_FP16","shape":[4],"datatype":"FP16","parameters":{"binary_data_size":8}' in sent


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("-i", "grpc", "--input-tensor-format", "json"), "--input-tensor-format json is HTTP's"),
        (("--output-tensor-format", "json", "--shared-memory", "system"), "with --shared-memory system"),
        (("--input-tensor-format", "xml"), "invalid choice: 'xml'"),
    ],
)
def test_a_format_that_cannot_apply_is_refused_before_any_load(server, flags: tuple[str, ...], message: str) -> None:
    result = run_perfprobe("sweep", "-m", "simple", "-u", server.http_url, *COMMON, *flags)
    assert result.returncode == exitcodes.USAGE
    assert message in result.stderr and len(result.stderr.strip().splitlines()) <= 3


def test_compare_sends_json_on_the_wire_cell_only(server, tmp_path: Path) -> None:
    result = run_perfprobe(
        "compare", "-u", server.http_url, "-m", "identity", "--sizes", "4KiB", "--transports", "none,system",
        "--input-tensor-format", "json", "--concurrency", "1", "--measurement-interval", "300", "--max-trials", "2",
        "--no-report", "--output-dir", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    formats = {
        cell: json.loads((tmp_path / f"{cell}-4096" / "results.json").read_text())["settings"]["tensor_format"]
        for cell in ("none", "system")
    }
    assert formats == {"none": {"input": "json", "output": "binary"}, "system": {"input": "binary", "output": "binary"}}


def test_bytes_that_are_not_text_cannot_go_as_json(server, tmp_path: Path) -> None:
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"data": [{"INPUT0": {"b64": "//79", "shape": [1]}}]}))  # 0xff 0xfe 0xfd
    result = run_perfprobe(
        "sweep", "-m", "bytes_echo", "-u", server.http_url, *COMMON, "--input-data", str(data),
        "--input-tensor-format", "json",
    )  # fmt: skip
    assert result.returncode == exitcodes.USAGE
    assert result.stderr.strip() == (
        "perfprobe: error: bytes_echo: a BYTES element that is not UTF-8 text: JSON carries only text, send it binary"
    )
