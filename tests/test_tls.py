"""TLS: gRPC against a real Triton started with a self-signed certificate; HTTPS through a TLS relay.

Triton's HTTP endpoint has no TLS of its own (deployments put a TLS proxy in front of it), so the
HTTPS tests go through ``tests.relay.Relay``, a stand-in proxy that ends TLS and passes bytes on to the
real server.
"""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import run_perfprobe
from relay import Relay

from perfprobe import exitcodes
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


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedServer, Path, Path]]:
    """Triton with gRPC over TLS only: the server, its certificate (its own CA) and its key."""
    key, cert = _self_signed(tmp_path_factory.mktemp("tls"))
    tls_args = ["--grpc-use-ssl=true", f"--grpc-server-cert={cert}", f"--grpc-server-key={key}"]
    with EmbeddedServer(builtin_models=["simple"], pick_free_ports=True, extra_args=tls_args) as server:
        yield server, cert, key


def test_grpc_tls_round_trip(tls_server: tuple[EmbeddedServer, Path, Path]) -> None:
    server, cert, _ = tls_server
    with GrpcClient(f"grpcs://{server.grpc_url}", ssl_ca_file=str(cert)) as secure:
        assert secure.is_server_ready()
        a = np.arange(16, dtype=np.int32).reshape(1, 16)
        result = secure.infer("simple", [InferInput("INPUT0", a), InferInput("INPUT1", a)])
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * a)
    with GrpcClient(server.grpc_url, timeout_s=3) as plain, pytest.raises(InferenceServerError):
        plain.server_metadata()  # a plaintext client cannot talk to a TLS endpoint


def _sweep(url: str, protocol: str, out: Path, *flags: str) -> dict:
    result = run_perfprobe(
        "sweep", "-i", protocol, "-u", url, "-m", "simple", "--concurrency", "2", "--measurement-interval", "300",
        "--max-trials", "3", "--no-report", "--output-dir", str(out), *flags,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "grpcio" not in result.stdout + result.stderr  # no note that it left perfprobe's own connection
    document = json.loads((out / "results.json").read_text())
    assert document["settings"]["tls"] is True
    for level in document["levels"]:
        for window in level["windows"]:
            assert window["server"]["simple"]["counts"]["success"] == window["completed"] > 0
    return document


@pytest.mark.parametrize(
    "flags",
    [
        ("--workers", "greenlet"),
        ("--workers", "thread"),
        ("--mode", "stream", "--workers", "greenlet"),
        ("--processes", "2"),
    ],
)
def test_a_grpc_sweep_over_tls_runs_on_perfprobes_own_http2_connections(
    tls_server: tuple[EmbeddedServer, Path, Path], tmp_path: Path, flags: tuple[str, ...]
) -> None:
    server, cert, _ = tls_server
    document = _sweep(server.grpc_url, "grpc", tmp_path, "--ssl-ca-file", str(cert), *flags)
    assert document["settings"]["grpc_transport"] == "h2"


def test_a_server_certificate_no_trusted_ca_signed_is_one_line(
    tls_server: tuple[EmbeddedServer, Path, Path], tmp_path: Path
) -> None:
    server, _, _ = tls_server
    _, stranger = _self_signed(tmp_path)  # a CA that did not sign the server's certificate
    _assert_refused(server.grpc_url, tmp_path / "out", "--ssl-ca-file", str(stranger))


def _assert_refused(url: str, out: Path, *flags: str) -> None:
    """A gRPC sweep whose TLS the server refuses: nothing answered, in one line."""
    result = run_perfprobe(
        "sweep", "-i", "grpc", "-u", url, "-m", "simple", *flags, "--request-timeout", "5", "--no-report",
        "--output-dir", str(out), timeout=120,
    )  # fmt: skip
    assert result.returncode == exitcodes.SERVER_UNREACHABLE, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--ssl-key-file", "key.pem"), "--ssl-key-file needs --ssl-cert-file"),
        (("--ssl-ca-file", "/no/such/ca.pem"), "--ssl-ca-file /no/such/ca.pem: no such file"),
        (("--ssl-ca-file", __file__, "--serve"), "--serve starts a server without TLS"),
    ],
)
def test_bad_tls_options_are_one_line_and_exit_2(flags: tuple[str, ...], says: str) -> None:
    result = run_perfprobe("sweep", "-m", "simple", *flags, timeout=60)
    assert result.returncode == exitcodes.USAGE
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("workers", ["thread", "greenlet"])
def test_an_https_sweep_through_a_tls_proxy(
    server, tls_server: tuple[EmbeddedServer, Path, Path], tmp_path: Path, workers: str
) -> None:
    _, cert, key = tls_server
    host, port = server.http_url.rsplit(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    relay = Relay((host, int(port)), context)
    try:
        _sweep(f"https://127.0.0.1:{relay.port}", "http", tmp_path, "--ssl-ca-file", str(cert), "--workers", workers)
    finally:
        relay.close()


@pytest.mark.parametrize("workers", ["thread", "greenlet"])
def test_an_https_proxy_that_asks_for_a_client_certificate_gets_it_on_every_worker_kind(
    server, tmp_path: Path, workers: str
) -> None:
    """Mutual TLS over HTTP: thread workers' own sockets present the certificate too (faults round two, item 9)."""
    key, cert = _self_signed(tmp_path)
    host, port = server.http_url.rsplit(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cert)
    relay = Relay((host, int(port)), context)
    own = ("--ssl-ca-file", str(cert), "--ssl-cert-file", str(cert), "--ssl-key-file", str(key))
    try:
        _sweep(f"https://127.0.0.1:{relay.port}", "http", tmp_path / "run", *own, "--workers", workers)
    finally:
        relay.close()


def test_a_server_that_asks_for_a_client_certificate_gets_it_from_every_connection(tmp_path: Path) -> None:
    """Mutual TLS: the server trusts one self-signed certificate, which is also the client's."""
    key, cert = _self_signed(tmp_path)
    tls_args = [
        "--grpc-use-ssl-mutual=true", f"--grpc-server-cert={cert}", f"--grpc-server-key={key}",
        f"--grpc-root-cert={cert}",
    ]  # fmt: skip
    with EmbeddedServer(builtin_models=["simple"], pick_free_ports=True, extra_args=tls_args) as server:
        own = ("--ssl-ca-file", str(cert), "--ssl-cert-file", str(cert), "--ssl-key-file", str(key))
        _sweep(server.grpc_url, "grpc", tmp_path / "greenlet", *own, "--workers", "greenlet")
        _sweep(server.grpc_url, "grpc", tmp_path / "thread", *own, "--workers", "thread")
        _assert_refused(server.grpc_url, tmp_path / "refused", "--ssl-ca-file", str(cert))  # no certificate


def test_describe_over_tls(tls_server: tuple[EmbeddedServer, Path, Path]) -> None:
    server, cert, _ = tls_server
    result = run_perfprobe("describe", "-i", "grpc", "-u", server.grpc_url, "--ssl-ca-file", str(cert), "-m", "simple")
    assert result.returncode == 0, result.stderr
    assert "simple" in result.stdout


def test_a_killed_load_process_leaves_no_copy_of_the_key(server, tmp_path: Path) -> None:
    """Faults round two, item 15: the coordinator removes the TLS files its killed load process wrote."""
    import glob
    import os
    import signal
    import tempfile
    import time

    from conftest import perfprobe_command
    from test_processes import _load_processes, _wait_for

    key, cert = _self_signed(tmp_path)
    host, port = server.http_url.rsplit(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    relay = Relay((host, int(port)), context)
    try:
        process = subprocess.Popen(
            perfprobe_command(
                "sweep", "-u", f"https://127.0.0.1:{relay.port}", "-m", "simple", "--ssl-ca-file", str(cert),
                "--ssl-cert-file", str(cert), "--ssl-key-file", str(key), "--processes", "2", "--concurrency", "2",
                "--measurement-interval", "400", "--max-trials", "30", "--stability-percentage", "0.001",
                "--no-report", "--output-dir", str(tmp_path / "run"),
            ),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        copies = os.path.join(tempfile.gettempdir(), f"perfprobe-tls-{process.pid}_*")
        _wait_for(lambda: len(_load_processes(process.pid)) == 2 and len(glob.glob(copies)) == 2)
        time.sleep(0.5)
        os.kill(_load_processes(process.pid)[1], signal.SIGKILL)
        _, stderr = process.communicate(timeout=120)
    finally:
        relay.close()
    assert process.returncode == exitcodes.SERVER_ERROR, stderr
    assert glob.glob(copies) == []
