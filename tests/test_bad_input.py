"""Bad input data and bad options: exit 2 and one line naming what is wrong, before any load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_perfprobe

from perfprobe import exitcodes

SIXTEEN = list(range(16))
BAD_DATA = [
    # (model, INPUT0 value, what the one line must name)
    ("simple", ["a"] * 16, "strings where INT32"),
    ("simple", [[1, 2], [3]], "ragged"),
    ("simple", {"content": None}, "null"),
    ("simple", {"content": SIXTEEN, "shape": 16}, "'shape' must be a list"),
    ("simple", {"b64": "not base64!!"}, "not valid base64"),
    ("simple", {"b64": "AAAAAAA="}, "not a whole number of INT32"),
    ("bytes_echo", [{"nested": "object"}], "BYTES values must be strings"),
    # values that would be silently changed on the way out
    ("simple", [10**12] + SIXTEEN[1:], "does not fit INT32"),
    ("simple", [1.7] + SIXTEEN[1:], "whole numbers"),
    ("bytes_echo", [5, 3], "BYTES values must be strings"),
]


@pytest.mark.parametrize(("model", "value", "says"), BAD_DATA)
def test_bad_json_data_is_refused_with_one_line(server, tmp_path: Path, model: str, value, says: str) -> None:
    entry = {"INPUT0": value}
    if model == "simple":
        entry["INPUT1"] = SIXTEEN
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"data": [entry]}))
    result = run_perfprobe(
        "sweep", "-u", server.http_url, "-m", model, "--input-data", str(data), "--output-dir", str(tmp_path / "out")
    )
    assert result.returncode == exitcodes.USAGE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert says in lines[0] and "INPUT0" in lines[0] and "item 0" in lines[0], lines[0]
    assert not (tmp_path / "out" / "results.csv").exists()  # refused before any load


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--shape", "FOO:4"], "FOO, which simple does not have"),
        (["--request-timeout", "0"], "--request-timeout must be more than 0"),
        (["--request-rate", "10", "--max-inflight", "0"], "--max-inflight must be at least 1"),
        (["--request-rate", "10", "--send-spin", "-5"], "--send-spin must be between 0 and 1000000"),
    ],
)
def test_bad_options_are_refused(server, tmp_path: Path, args: list[str], says: str) -> None:
    result = run_perfprobe("sweep", "-u", server.http_url, "-m", "simple", *args, "--output-dir", str(tmp_path))
    assert result.returncode == exitcodes.USAGE, result.stderr
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_an_unwritable_output_dir_is_refused_before_any_load(server, tmp_path: Path) -> None:
    a_file = tmp_path / "results-here"
    a_file.write_text("not a directory")
    result = run_perfprobe("sweep", "-u", server.http_url, "-m", "simple", "--output-dir", str(a_file))
    assert result.returncode == exitcodes.USAGE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--output-dir" in lines[0] and "cannot write results there" in lines[0]
    assert "level" not in result.stdout  # nothing was measured


def test_asyncio_workers_on_http_are_refused_in_one_line(server, tmp_path) -> None:
    result = run_perfprobe(
        "sweep", "-u", server.http_url, "-m", "simple", "--workers", "asyncio", "--output-dir", str(tmp_path)
    )  # fmt: skip
    assert result.returncode == exitcodes.USAGE
    assert result.stderr.strip() == (
        "perfprobe: error: --workers asyncio drives gRPC only; http runs on greenlet or thread workers"
    )
