"""One real embedded Triton for the whole test session, with the built-in and test models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from perfprobe.client import InferenceClient, make_client
from perfprobe.server import EmbeddedServer

TEST_MODELS = Path(__file__).parent / "models"
PROTOCOLS = ("http", "grpc")


@pytest.fixture(scope="session")
def server() -> Iterator[EmbeddedServer]:
    """The real tritonserver from nvidia-pytriton on free loopback ports."""
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
