"""gRPC over TLS against a real Triton started with a self-signed certificate."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from perfprobe.client import InferenceServerError, InferInput
from perfprobe.client.grpc_client import GrpcClient
from perfprobe.server import EmbeddedServer


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key, cert = folder / "server.key", folder / "server.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


def test_grpc_tls_round_trip(tmp_path: Path) -> None:
    key, cert = _self_signed(tmp_path)
    tls_args = ["--grpc-use-ssl=true", f"--grpc-server-cert={cert}", f"--grpc-server-key={key}"]
    with EmbeddedServer(builtin_models=["simple"], pick_free_ports=True, extra_args=tls_args) as server:
        with GrpcClient(f"grpcs://{server.grpc_url}", ssl_ca_file=str(cert)) as secure:
            assert secure.is_server_ready()
            a = np.arange(16, dtype=np.int32).reshape(1, 16)
            result = secure.infer("simple", [InferInput("INPUT0", a), InferInput("INPUT1", a)])
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * a)
        with GrpcClient(server.grpc_url, timeout_s=3) as plain, pytest.raises(InferenceServerError):
            plain.server_metadata()  # a plaintext client cannot talk to a TLS endpoint
