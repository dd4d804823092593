"""``--cluster``: load processes as Ray actors on a real two-node Ray cluster on this machine.

Every address is loopback (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes Ray keep 127.0.0.1 rather
than swap in the machine's address), the dashboard is off, and the cluster is shut down after.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import perfprobe_command, run_perfprobe

from perfprobe import exitcodes

LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    cluster_utils = pytest.importorskip("ray.cluster_utils", reason="the cluster extra (Ray) is part of the dev setup")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in LOOPBACK_ONLY.items():
            patch.setenv(name, value)
        cluster = cluster_utils.Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "include_dashboard": False, "node_ip_address": "127.0.0.1"},
        )
        try:
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
            cluster.wait_for_nodes()
            yield cluster
        finally:
            cluster.shutdown()


def _settings(tmp_path: Path) -> tuple[str, ...]:
    return ("--measurement-interval", "500", "--stability-windows", "2", "--max-trials", "3", "--no-report",
            "--output-dir", str(tmp_path))  # fmt: skip


@pytest.mark.parametrize(
    ("protocol", "models"), [("http", ("simple",)), ("grpc", ("simple",)), ("grpc", ("simple", "identity@c=2"))]
)
def test_cluster_spreads_processes_over_nodes_and_merges_exactly(
    server, ray_cluster, tmp_path: Path, protocol: str, models: tuple[str, ...]
) -> None:
    named = [flag for model in models for flag in ("-m", model)]
    result = run_perfprobe(
        "sweep", "-i", protocol, "-u", server.url(protocol), *named, "--shape", "INPUT0:16",
        "--cluster", ray_cluster.address, "--processes", "2", "--concurrency", "1:2", *_settings(tmp_path),
        env=LOOPBACK_ONLY,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["settings"]["processes"] == 2
    assert document["settings"]["cluster"] == ray_cluster.address
    assert len(set(document["settings"]["ray_nodes"])) == 2  # one load process on each node
    for level in document["levels"]:
        by_model = level.get("models") or {"simple": level}
        assert list(by_model) == [model.partition("@")[0] for model in models]
        for index, window in enumerate(level["windows"]):
            assert window["drained"]
            assert sum(part["requests"] for part in window["processes"]) == window["completed"]
            for name, entry in by_model.items():
                own = entry["windows"][index]
                assert own["server"][name]["counts"]["success"] == own["completed"] > 0, name
            # one model at one in flight: one process loads; the second model's 2 in flight reach both
            assert len(window["processes"]) == (level["level"] if len(models) == 1 else 2)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, Path]]:
    """Triton with gRPC over TLS only, and the folder holding its certificate (``server.crt``)."""
    from perfprobe.server import EmbeddedServer
    from tests.test_tls import _self_signed

    folder = tmp_path_factory.mktemp("cluster_tls")
    key, cert = _self_signed(folder)
    tls_args = ["--grpc-use-ssl=true", f"--grpc-server-cert={cert}", f"--grpc-server-key={key}"]
    with EmbeddedServer(builtin_models=["simple"], pick_free_ports=True, extra_args=tls_args) as running:
        yield running, folder


def test_tls_files_reach_load_processes_on_other_nodes_as_their_contents(
    ray_cluster, tls_server: tuple[object, Path], tmp_path: Path
) -> None:
    """A relative ``--ssl-ca-file`` means nothing where a Ray actor runs: the processes get the file's contents."""
    server, folder = tls_server
    result = run_perfprobe(
        "sweep", "-i", "grpc", "-u", server.grpc_url, "--ssl-ca-file", "server.crt", "-m", "simple",
        "--cluster", ray_cluster.address, "--processes", "2", "--concurrency", "2", *_settings(tmp_path),
        env=LOOPBACK_ONLY, cwd=folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["settings"]["tls"] is True and len(set(document["settings"]["ray_nodes"])) == 2
    for window in document["levels"][0]["windows"]:
        assert window["server"]["simple"]["counts"]["success"] == window["completed"] > 0
        assert len(window["processes"]) == 2


def test_tls_contents_are_written_for_this_user_only_and_removed() -> None:
    import stat

    from perfprobe.client.tls import TlsPems, written

    pems = TlsPems(b"ca", b"cert", None)
    with written(pems) as files:
        assert files.key_file is None
        for path, content in ((files.ca_file, b"ca"), (files.cert_file, b"cert")):
            assert Path(path).read_bytes() == content
            assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
        assert stat.S_IMODE(Path(path).parent.stat().st_mode) == 0o700
    assert not Path(path).parent.exists()


# removes a node from the module's cluster: keep it the last test that needs two nodes
def test_a_node_lost_mid_level_stops_the_run_keeping_finished_levels(server, ray_cluster, tmp_path: Path) -> None:
    process = subprocess.Popen(
        perfprobe_command(
            "sweep", "-u", server.http_url, "-m", "simple", "--cluster", ray_cluster.address, "--processes", "2",
            "--concurrency", "2:8:x2", *_settings(tmp_path),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**__import__("os").environ, **LOOPBACK_ONLY},
    )  # fmt: skip
    results = tmp_path / "results.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if results.exists() and len(results.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()[1]
    time.sleep(0.3)  # into the second level
    worker = next(node for node in ray_cluster.worker_nodes)
    ray_cluster.remove_node(worker)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == exitcodes.SERVER_ERROR, stderr
    assert len(stderr.strip().splitlines()) == 1 and "load process" in stderr, stderr
    assert results.read_text().splitlines()[1].startswith("2,")  # the finished level is kept
