"""The embedded server launcher: ports, missing wheel, clean stop."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from conftest import TEST_MODELS

from perfprobe import cli, exitcodes
from perfprobe.server import EmbeddedServer, PortInUse, ServerNotInstalled, distribution


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUse, match=f"HTTP port {port} is already in use"):
            EmbeddedServer(builtin_models=["identity"], http_port=port).start()


def test_missing_wheel_says_how_to_install(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # a stand-in for a machine without nvidia-pytriton: the package lookup finds nothing
    monkeypatch.setattr(distribution.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ServerNotInstalled, match=r"pip install 'perfprobe\[server\]'"):
        distribution.locate()
    code = cli.run(["serve", "--free-ports"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == exitcodes.SERVER_UNAVAILABLE
    assert len(err) == 1 and "pip install 'perfprobe[server]'" in err[0]


def test_numpy_2_is_refused_before_the_server_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under numpy 2 the python backend answered with empty outputs (seen on a GPU machine): refuse."""
    import numpy

    monkeypatch.setattr(numpy, "__version__", "2.5.2")
    started = []
    monkeypatch.setattr("subprocess.Popen", lambda *a, **k: started.append(a))
    assert cli.run(["serve", "--free-ports", "--builtin", "simple"]) == exitcodes.SERVER_UNAVAILABLE
    assert not started
    err = capsys.readouterr().err
    assert "empty outputs under numpy 2.5.2" in err and len(err.strip().splitlines()) == 1


def test_unknown_builtin_model_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown built-in"):
        EmbeddedServer(builtin_models=["nope"])


def test_start_binds_loopback_and_stop_leaves_nothing() -> None:
    server = EmbeddedServer(builtin_models=["identity"], pick_free_ports=True).start()
    try:
        pid = server.pid
        assert server.is_running() and server.version
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            command = cmdline.read().split(b"\0")
        assert b"--http-address=127.0.0.1" in command and b"--grpc-address=127.0.0.1" in command
    finally:
        server.stop()
    assert not server.is_running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    survivors = [p for p in os.listdir("/proc") if p.isdigit() and _parent(p) == pid]
    assert survivors == []


def _parent(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def test_serve_command_prints_urls_and_stops_on_sigterm(tmp_path: Path) -> None:
    import re
    import signal
    import subprocess
    import sys
    import time

    from conftest import TEST_MODELS

    extra = tmp_path / "repository"  # one more model from a repository of the user's
    extra.mkdir()
    (extra / "request_echo").symlink_to(TEST_MODELS / "request_echo")
    process = subprocess.Popen(
        [sys.executable, "-m", "perfprobe", "serve", "--free-ports", "--builtin", "identity", "--models", str(extra)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "Ctrl-C to stop." in line or not line:
                break
        text = "".join(lines)
        assert "ready (models: identity, request_echo)" in text, text  # those of --models too
        assert re.search(r"HTTP\s+http://127\.0\.0\.1:\d+", text), text
        http = re.search(r"http://(127\.0\.0\.1:\d+)", text).group(1)
        from perfprobe.client import make_client

        with make_client("http", http) as client:
            assert client.is_model_ready("identity")
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:  # a failed check above: SIGTERM, so the command stops its tritonserver too
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
    assert process.returncode == 0
    assert "stopped." in out
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _parent(p) == process.pid]


def test_a_killed_servers_backend_regions_are_released_and_a_running_servers_kept(server) -> None:
    """SIGKILL leaves the python backend's /dev/shm regions behind; stop() unlinks those, and only those."""
    from perfprobe.client import make_client
    from perfprobe.server.backend_regions import SHM_DIR, backend_regions, regions_of_group

    if not SHM_DIR.is_dir():
        pytest.skip("no /dev/shm here")
    doomed = EmbeddedServer(builtin_models=["simple"], pick_free_ports=True).start()
    try:
        own = regions_of_group(doomed.pid)  # its own, not those of servers other runs start meanwhile
        assert own, "the python backend made no region: nothing to check"
        doomed.kill()
        assert own <= backend_regions()  # killed: Triton did not unlink them
    finally:
        doomed.stop()
    assert set(doomed.released_regions) == own  # none of the regions that were there before it
    assert not own & backend_regions()
    with make_client("http", server.http_url) as client:  # the session's server still has its regions
        assert client.is_model_ready("simple")


def test_a_server_stopped_without_grace_leaves_no_backend_regions() -> None:
    """SIGKILL right after SIGTERM: the dying backend stubs still map their regions for a moment.

    Before stop() waited for the server's process group to end, 2 to 9 of this repository's 15
    regions were left in /dev/shm on every try (taken for in use by stubs being torn down).
    """
    from perfprobe.server.backend_regions import SHM_DIR, backend_regions, regions_of_group

    if not SHM_DIR.is_dir():
        pytest.skip("no /dev/shm here")
    server = EmbeddedServer(model_repositories=[TEST_MODELS], pick_free_ports=True).start()
    own = regions_of_group(server.pid)  # its own, not those of servers other runs start meanwhile
    assert len(own) > 1, "the python backend made too few regions to check"
    server.stop(grace_s=0.0)
    assert not own & backend_regions()
    assert set(server.released_regions) <= own


def test_the_group_counts_as_running_until_only_zombies_are_left(tmp_path) -> None:
    """Fake /proc: a stub whose name holds ") " still counts; a zombie and another group's process do not."""
    from perfprobe.server.backend_regions import await_group_end, group_running

    def process(pid: int, name: str, state: str, group: int) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({name}) {state} 1 {group} {group} 0 -1 4194560\n")

    process(300, "tritonserver", "Z", 300)
    process(400, "other) S 1 300", "S", 400)  # another group, whose name would mislead a plain split
    assert not group_running(300, tmp_path)
    assert await_group_end(300, timeout_s=0.0, proc=tmp_path)
    process(301, "triton_python_ backend) stub", "R", 300)
    assert group_running(300, tmp_path)
    assert not await_group_end(300, timeout_s=0.05, proc=tmp_path, poll_s=0.01)
    assert not group_running(300, tmp_path / "no_proc")  # no /proc to read (not Linux): nothing to wait for


def test_only_regions_no_live_process_uses_are_released(tmp_path) -> None:
    """Fake /dev/shm and /proc: a region mapped by one process and one open in another stay."""
    from perfprobe.server.backend_regions import REGION_PREFIX, release_leftovers

    shm, proc = tmp_path / "shm", tmp_path / "proc"
    mapped, opened, leftover = (f"{REGION_PREFIX}{name}" for name in ("mapped", "opened", "leftover"))
    shm.mkdir()
    for name in (mapped, opened, leftover):
        (shm / name).write_bytes(b"\0" * 16)
    (proc / "101" / "fd").mkdir(parents=True)
    (proc / "101" / "maps").write_text(f"7f00-7f10 rw-s 00000000 00:1a 5 {shm}/{mapped} (deleted)\n")
    (proc / "202" / "fd").mkdir(parents=True)
    (proc / "202" / "maps").write_text("")
    os.symlink(f"{shm}/{opened}", proc / "202" / "fd" / "7")
    assert release_leftovers({mapped, opened, leftover}, shm, proc) == [leftover]
    assert sorted(path.name for path in shm.iterdir()) == sorted([mapped, opened])
