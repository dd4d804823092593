"""One real embedded Triton for the whole test session, with the built-in and test models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from perfprobe.client import InferenceClient, make_client
from perfprobe.server import EmbeddedServer

TEST_MODELS = Path(__file__).parent / "models"
PROTOCOLS = ("http", "grpc")


@dataclass
class ExternalServer:
    """A server someone else started (``PERFPROBE_TEST_SERVER=HTTP_ADDR,GRPC_ADDR``).

    Used to run the client tests from an environment without the server wheel, e.g. one with
    numpy 2 (nvidia-pytriton pins numpy<2), against a real server started from another venv.
    """

    http_url: str
    grpc_url: str
    version: str = ""

    def url(self, protocol: str) -> str:
        return self.http_url if protocol == "http" else self.grpc_url


@pytest.fixture(scope="session")
def server() -> Iterator[EmbeddedServer | ExternalServer]:
    """The real tritonserver from nvidia-pytriton on free loopback ports."""
    external = os.environ.get("PERFPROBE_TEST_SERVER")
    if external:
        http, grpc_ = external.split(",")
        with make_client("http", http) as probe:
            yield ExternalServer(http, grpc_, probe.server_metadata()["version"])
        return
    log = Path(os.environ.get("PERFPROBE_TEST_LOG", "/tmp/perfprobe-test-tritonserver.log"))
    with EmbeddedServer(model_repositories=[TEST_MODELS], pick_free_ports=True, log_path=log) as running:
        yield running


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def client(server: EmbeddedServer, protocol: str) -> Iterator[InferenceClient]:
    """A client of each protocol (the test runs once per protocol)."""
    with make_client(protocol, server.url(protocol)) as made:
        yield made
