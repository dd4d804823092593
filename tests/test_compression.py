"""``--compression``: requests compressed on every send path, answers decompressed; against the real server.

What goes over the wire is counted by a relay between perfprobe and Triton: a tensor of zeros
shrinks to a few hundred bytes, so a compressed run sends a small fraction of the tensor's
bytes per inference, and an uncompressed one never less than the tensor itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from perfprobe.client import InferenceServerError, InferInput, make_client
from perfprobe.client.errors import BAD_RESPONSE
from perfprobe.server import EmbeddedServer
from tests.conftest import run_perfprobe
from tests.relay import Relay

ELEMENTS = 16384  # float32 zeros: 64 KiB of tensor per request, each way
TENSOR_BYTES = ELEMENTS * 4


def _identity_successes(server) -> int:
    with make_client("http", server.http_url) as control:
        return control.inference_statistics("identity")["model_stats"][0]["inference_stats"]["success"]["count"]


def _bytes_per_inference(server, protocol: str, tmp_path: Path, *flags: str) -> tuple[float, float, dict]:
    """A short sweep of ``identity`` on zeros through a relay: bytes sent and received per inference."""
    host, port = server.url(protocol).rsplit(":", 1)
    relay = Relay((host, int(port)))
    before = _identity_successes(server)
    try:
        result = run_perfprobe(
            "sweep", "-i", protocol, "-u", f"127.0.0.1:{relay.port}", "-m", "identity", "--shape", f"INPUT0:{ELEMENTS}",
            "--input-data", "zero", "--concurrency", "2", "--measurement-interval", "300", "--max-trials", "3",
            "--no-report", "--output-dir", str(tmp_path), *flags,
        )  # fmt: skip
    finally:
        relay.close()
    assert result.returncode == 0, result.stderr
    assert "grpcio" not in result.stdout + result.stderr  # no note that gRPC left perfprobe's own connection
    inferences = _identity_successes(server) - before
    assert inferences > 0
    document = json.loads((tmp_path / "results.json").read_text())
    for level in document["levels"]:
        for window in level["windows"]:
            assert window["server"]["identity"]["counts"]["success"] == window["completed"] > 0
    return relay.sent / inferences, relay.received / inferences, document


@pytest.mark.parametrize(
    ("protocol", "flags", "algorithm"),
    [
        ("http", ("--workers", "thread"), "gzip"),
        ("http", ("--workers", "greenlet"), "deflate"),
        ("grpc", ("--workers", "greenlet"), "gzip"),
        ("grpc", ("--workers", "greenlet"), "deflate"),
        ("grpc", ("--workers", "thread"), "gzip"),
        ("grpc", ("--mode", "stream"), "gzip"),
        ("grpc", ("--grpc-transport", "grpcio"), "deflate"),
    ],
)
def test_compressed_requests_carry_a_fraction_of_the_tensor(
    server, tmp_path: Path, protocol: str, flags: tuple[str, ...], algorithm: str
) -> None:
    sent, received, document = _bytes_per_inference(server, protocol, tmp_path, "--compression", algorithm, *flags)
    assert document["settings"]["compression"] == algorithm
    assert sent < TENSOR_BYTES / 10
    if protocol == "http":  # answers asked compressed too
        assert received < TENSOR_BYTES / 10
    else:  # a gRPC server compresses answers by its own setting, none here
        assert received > TENSOR_BYTES


def test_without_compression_every_request_carries_the_whole_tensor(server, tmp_path: Path) -> None:
    sent, _, document = _bytes_per_inference(server, "grpc", tmp_path)
    assert document["settings"]["compression"] is None
    assert sent > TENSOR_BYTES


def test_an_unknown_algorithm_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_perfprobe("sweep", "-m", "simple", "--compression", "brotli", "--output-dir", str(tmp_path))
    assert result.returncode == 2
    assert "--compression" in result.stderr and "gzip" in result.stderr


# ---- answers a gRPC server compresses ---------------------------------------------------------


@pytest.fixture(scope="module")
def compressing_server():
    """Triton compressing every gRPC answer to a client that offers an encoding."""
    args = ["--grpc-infer-response-compression-level=high"]
    with EmbeddedServer(builtin_models=["identity"], pick_free_ports=True, extra_args=args) as running:
        yield running


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_grpc_answers_are_decompressed_on_perfprobes_own_connection(
    compressing_server, monkeypatch: pytest.MonkeyPatch, algorithm: str
) -> None:
    from perfprobe.client import grpc_wire

    taken: list[str] = []
    real = grpc_wire.decompressed_answer
    monkeypatch.setattr(
        grpc_wire, "decompressed_answer", lambda data, encoding: taken.append(encoding) or real(data, encoding)
    )
    values = np.zeros(ELEMENTS, dtype=np.float32)
    values[::7] = 3.5
    with make_client("grpc", compressing_server.grpc_url, request_compression=algorithm) as client:
        wire = client.wire_connection()
        request = client.build_request("identity", [InferInput("INPUT0", values)])
        for _ in range(2):
            np.testing.assert_array_equal(wire.decode_raw(wire.send_raw(request)).as_numpy("OUTPUT0"), values)
        wire.close()
    assert taken and set(taken) <= {"gzip", "deflate"}  # the server chose from what was offered
    with make_client("grpc", compressing_server.grpc_url) as plain:  # nothing offered: plain answers
        wire = plain.wire_connection()
        request = plain.build_request("identity", [InferInput("INPUT0", values)])
        taken.clear()
        np.testing.assert_array_equal(wire.decode_raw(wire.send_raw(request)).as_numpy("OUTPUT0"), values)
        wire.close()
    assert taken == []


def test_an_answer_in_an_encoding_not_offered_is_a_bad_response() -> None:
    from perfprobe.client.compression import compress, decompress

    assert decompress(compress(b"x" * 1000, "gzip"), "gzip") == b"x" * 1000
    assert decompress(b"as is", "identity") == b"as is"
    for encoding, data in (("br", b"\x00"), ("gzip", b"not gzip")):
        with pytest.raises(ValueError):
            decompress(data, encoding)
    with pytest.raises(InferenceServerError) as refused:
        from perfprobe.client.compression import decompressed_answer

        decompressed_answer(b"not deflate", "deflate")
    assert refused.value.failure == BAD_RESPONSE
