"""System shared-memory regions: unique names, own lifecycle, cleanup on every exit path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from perfprobe.client import InferInput, RequestedOutput, SharedMemoryRef, make_client
from perfprobe.shm.system import RegionSet, leftover_segments


def test_regions_round_trip_through_the_server(server, protocol: str) -> None:
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.full((1, 16), 7, dtype=np.int32)
    with make_client(protocol, server.url(protocol)) as client:
        wire = client.infer("simple", [InferInput("INPUT0", a), InferInput("INPUT1", b)])
        with RegionSet("test") as regions:
            inputs_region = regions.create(128, "in")
            outputs_region = regions.create(128, "out")
            inputs_region.write(a.tobytes(), 0)
            inputs_region.write(b.tobytes(), 64)
            for region in (inputs_region, outputs_region):
                regions.register(client, region)
            status = client.system_shared_memory_status()
            assert {inputs_region.name, outputs_region.name} <= set(status)
            result = client.infer(
                "simple",
                [
                    InferInput(
                        "INPUT0",
                        datatype="INT32",
                        shape=[1, 16],
                        shared_memory=SharedMemoryRef(inputs_region.name, 64, 0),
                    ),
                    InferInput(
                        "INPUT1",
                        datatype="INT32",
                        shape=[1, 16],
                        shared_memory=SharedMemoryRef(inputs_region.name, 64, 64),
                    ),
                ],
                [
                    RequestedOutput("OUTPUT0", shared_memory=SharedMemoryRef(outputs_region.name, 64, 0)),
                    RequestedOutput("OUTPUT1", shared_memory=SharedMemoryRef(outputs_region.name, 64, 64)),
                ],
            )
            assert result.as_numpy("OUTPUT0") is None
            # byte for byte what the wire returned
            assert bytes(outputs_region.view(0, 64)) == bytes(wire.as_numpy("OUTPUT0").tobytes())
            assert bytes(outputs_region.view(64, 64)) == bytes(wire.as_numpy("OUTPUT1").tobytes())
            token = regions.token
        assert leftover_segments(token) == []
        remaining = client.system_shared_memory_status()
        assert inputs_region.name not in remaining and outputs_region.name not in remaining


def test_names_are_unique_and_creation_is_exclusive() -> None:
    with RegionSet("a") as first, RegionSet("a") as second:
        one, two = first.create(4096), second.create(4096)
        assert one.name != two.name and first.token != second.token
        assert os.path.exists(one.path) and os.path.exists(two.path)
        clash = type(one)(name=one.name, key=one.key, byte_size=4096)
        with pytest.raises(FileExistsError):
            clash.create()  # never adopt (and later unlink) a segment we did not create
    assert not os.path.exists(one.path) and not os.path.exists(two.path)


def test_foreign_region_survives_our_cleanup(server) -> None:
    foreign = f"/other_client_region_{os.getpid()}"
    fd = os.open(f"/dev/shm{foreign}", os.O_CREAT | os.O_RDWR, 0o600)
    os.ftruncate(fd, 4096)
    try:
        with make_client("http", server.http_url) as client:
            client.register_system_shared_memory("other_client", foreign, 4096)
            try:
                with RegionSet("mine") as regions:
                    regions.register(client, regions.create(4096))
                status = client.system_shared_memory_status()
                assert "other_client" in status
                assert not [name for name in status if name.startswith("perfprobe_")]
            finally:
                client.unregister_system_shared_memory("other_client")
    finally:
        os.close(fd)
        os.unlink(f"/dev/shm{foreign}")


def test_exception_and_sigterm_leave_nothing_behind(server, tmp_path) -> None:
    token_file = tmp_path / "token"
    script = textwrap.dedent(f"""
        import sys, time
        from perfprobe.client import make_client
        from perfprobe.interrupts import signals_as_interrupt
        from perfprobe.shm.system import RegionSet
        client = make_client("http", "{server.http_url}")
        regions = RegionSet("sig")
        with signals_as_interrupt(), regions:
            regions.register(client, regions.create(1 << 20))
            open("{token_file}", "w").write(regions.token)
            if sys.argv[1] == "raise":
                raise RuntimeError("boom")
            time.sleep(60)
    """)
    with make_client("http", server.http_url) as client:
        for how in ("raise", "sigterm"):
            token_file.unlink(missing_ok=True)
            process = subprocess.Popen([sys.executable, "-c", script, how], stderr=subprocess.PIPE)
            deadline = time.monotonic() + 30
            while not token_file.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.1)
            token = token_file.read_text()
            if how == "sigterm":
                assert leftover_segments(token)  # the region exists while the run lives
                process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
            assert process.returncode != 0
            assert leftover_segments(token) == []
            assert not [name for name in client.system_shared_memory_status() if token in name]


def test_server_gone_still_unlinks() -> None:
    from perfprobe.server import EmbeddedServer

    with EmbeddedServer(builtin_models=["identity"], pick_free_ports=True) as doomed:
        client = make_client("http", doomed.http_url, timeout_s=2.0)
        regions = RegionSet("gone")
        regions.register(client, regions.create(4096))
        doomed.kill()
        problems = regions.close()
        client.close()
    assert problems and "unregister" in problems[0]
    assert leftover_segments(regions.token) == []


class _InterruptedUnregister:
    """Fake control client: its first unregister call is where an interrupt lands.

    Under greenlet workers, gevent's hub throws a Ctrl-C taken by a worker greenlet into the main
    greenlet at its next wait; during clean-up that wait is an unregister call. No real server can
    make that happen on cue.
    """

    def __init__(self) -> None:
        self.unregistered: list[str] = []

    def register_system_shared_memory(self, name: str, key: str, byte_size: int) -> None:
        pass

    def unregister_system_shared_memory(self, name: str) -> None:
        self.unregistered.append(name)
        if len(self.unregistered) == 1:
            raise KeyboardInterrupt


def test_an_interrupt_thrown_into_cleanup_still_releases_every_region() -> None:
    client = _InterruptedUnregister()
    regions = RegionSet("thrown")
    created = [regions.create(4096) for _ in range(3)]
    for region in created:
        regions.register(client, region)
    with pytest.raises(KeyboardInterrupt):  # raised once every region is released, not before
        regions.close()
    assert sorted(client.unregistered) == sorted(region.name for region in created)
    assert leftover_segments(regions.token) == []
