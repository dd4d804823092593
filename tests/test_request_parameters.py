"""``--request-parameter NAME:VALUE:TYPE``: custom parameters on every request, on every send path.

``parameter_gate`` (tests/models) fails every request whose parameters are not gate "open",
level 3, strict true and scale 0.5 with exactly those types, so a run with no errors shows that
each parameter reached the model as given.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import perfprobe
from perfprobe import exitcodes
from perfprobe.errors import UsageError
from tests.conftest import run_perfprobe

PARAMETERS = ["gate:open:string", "level:3:int", "strict:true:bool", "scale:0.5:float"]
AS_DICT = {"gate": "open", "level": 3, "strict": True, "scale": 0.5}
COMMON = ("-m", "parameter_gate", "--shape", "INPUT0:4", "--measurement-interval", "300", "--max-trials", "3",
          "--no-report")  # fmt: skip


def _sweep(server, protocol: str, out: Path, *flags: str):
    return run_perfprobe("sweep", "-i", protocol, "-u", server.url(protocol), *COMMON, "--output-dir", str(out), *flags)


def _given(parameters: list[str]) -> list[str]:
    return [flag for parameter in parameters for flag in ("--request-parameter", parameter)]


@pytest.mark.parametrize(
    ("protocol", "flags"),
    [
        ("http", ("--concurrency", "2", "--workers", "thread")),
        ("http", ("--concurrency", "2", "--workers", "greenlet")),
        ("http", ("--request-rate", "200", "--shared-memory", "system", "--output-shared-memory-size", "64")),
        ("grpc", ("--concurrency", "2")),
        ("grpc", ("--concurrency", "2", "--mode", "stream")),
        ("grpc", ("--concurrency", "2", "--grpc-transport", "grpcio")),
        ("grpc", ("--concurrency", "3", "--processes", "2")),
    ],
)
def test_every_request_carries_the_parameters_with_their_types(
    server, tmp_path: Path, protocol: str, flags: tuple[str, ...]
) -> None:
    result = _sweep(server, protocol, tmp_path, *flags, *_given(PARAMETERS))
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["settings"]["request_parameters"] == AS_DICT
    for level in document["levels"]:
        assert level["error_reasons"] == []
        for window in level["windows"]:
            assert window["errors"] == {}
            served = window["server"]["parameter_gate"]["counts"]["success"]
            assert window["completed"] > 0
            # open loop is not drained at window boundaries: a request in flight there is the server's
            # in one window and the client's in the next
            assert served == window["completed"] if window["drained"] else abs(served - window["completed"]) <= 3


def test_a_parameter_missing_or_of_another_type_fails_every_request(server, tmp_path: Path) -> None:
    wrong_type = ["gate:open:string", "level:3:string", "strict:true:bool", "scale:0.5:float"]
    result = _sweep(server, "http", tmp_path, "--concurrency", "1", *_given(wrong_type))
    assert result.returncode == exitcodes.SERVER_ERROR
    assert "parameters not as expected: {'level': '3'}" in result.stderr
    # Triton counts a request whose response carries the model's error as a success: not another client's
    assert "another client" not in result.stderr and "answered with an error" in result.stderr


def test_the_library_takes_a_dict_of_typed_values(server) -> None:
    result = perfprobe.sweep(
        "parameter_gate", url=server.http_url, shape=["INPUT0:4"], concurrency=1, measurement_interval=300,
        max_trials=3, request_parameter=AS_DICT,
    )  # fmt: skip
    assert all(row["Errors"] == 0 and row["Completed"] == row["Server Success"] > 0 for row in result.rows)


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("gate:open", "expected NAME:VALUE:TYPE"),
        ("level:three:int", "'three' is not an int"),
        ("scale:half:float", "'half' is not a float"),
        ("strict:yes:bool", "a bool is true or false"),
        ("gate:open:complex", "TYPE one of string, int, float, bool"),
    ],
)
def test_a_malformed_parameter_is_one_line_and_exit_2(tmp_path: Path, given: str, says: str) -> None:
    result = run_perfprobe("sweep", "-m", "simple", "--request-parameter", given, "--output-dir", str(tmp_path))
    assert result.returncode == exitcodes.USAGE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr


def test_a_parameter_value_may_hold_colons_and_a_dict_value_must_be_plain() -> None:
    from perfprobe.runs.options import parse_request_parameters

    assert parse_request_parameters(["url:http://a:1/b:string"]) == {"url": "http://a:1/b"}
    # a YAML config may give a mapping among the strings (``--config`` wraps one value in a list)
    assert parse_request_parameters([{"level": 3}, "gate:open:string"]) == {"level": 3, "gate": "open"}
    with pytest.raises(UsageError, match="a bool, int, float or str"):
        parse_request_parameters({"nested": [1, 2]})


def test_a_config_file_may_give_the_parameters_as_a_mapping(server, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("request_parameter:\n  gate: open\n  level: 3\n  strict: true\n  scale: 0.5\n")
    result = _sweep(server, "http", tmp_path / "out", "--concurrency", "1", "--config", str(config))
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert document["settings"]["request_parameters"] == AS_DICT
