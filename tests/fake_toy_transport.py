"""Fake: a toy transport, to show that a protocol is one module plus its registration line.

Nothing else in perfprobe knows it. Its "server" lives in this process: each request is answered
by the worker's sender after a fixed delay, and the fake client counts what was answered, as a
server's statistics extension would, so a sweep's drained windows can be checked against it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from perfprobe.client import InferenceClient
from perfprobe.transport import register
from perfprobe.transport.base import Outcome, Sender, SendPlan, SendSettings, Transport, WorkerRuntime

MODEL = "fake_echo"


class FakeToyServer:
    """Fake: answers after ``delay_s`` and counts what it answered."""

    def __init__(self, delay_s: float = 0.002) -> None:
        self.delay_s = delay_s
        self.answered = 0
        self.refusing = False  # answer every request with an error, as a server whose model went away
        self._lock = threading.Lock()

    def answer(self) -> bool:
        """Whether the request succeeded (the refused ones are not counted as served)."""
        time.sleep(self.delay_s)
        if self.refusing:
            return False
        with self._lock:
            self.answered += 1
        return True


SERVER = FakeToyServer()


class FakeToyClient(InferenceClient):
    """Fake: the core calls, model configuration and statistics; every other extension left unsupported."""

    protocol = "toy"

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.server = SERVER

    def is_server_live(self) -> bool:
        return True

    def is_server_ready(self) -> bool:
        return True

    def is_model_ready(self, model_name: str, model_version: str = "") -> bool:
        return model_name == MODEL

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "fake-toy", "version": "0", "extensions": ["statistics", "model_configuration"]}

    def model_metadata(self, model_name: str, model_version: str = "") -> dict[str, Any]:
        return {"name": model_name, "versions": ["1"], "platform": "fake"}

    def model_config(self, model_name: str, model_version: str = "") -> dict[str, Any]:
        tensor = {"data_type": "TYPE_INT32", "dims": [4]}
        return {
            "name": model_name,
            "max_batch_size": 0,
            "input": [{"name": "INPUT0", **tensor}],
            "output": [{"name": "OUTPUT0", **tensor}],
        }

    def inference_statistics(self, model_name: str = "", model_version: str = "") -> dict[str, Any]:
        count = self.server.answered
        spent = {"count": count, "ns": int(count * self.server.delay_s * 1e9)}
        stats = {"success": spent, "compute_infer": spent}
        return {
            "model_stats": [
                {
                    "name": MODEL,
                    "version": "1",
                    "inference_count": count,
                    "execution_count": count,
                    "inference_stats": stats,
                }  # fmt: skip
            ]
        }

    def build_request(self, model_name: str, inputs: list[Any], outputs: Any = None, options: Any = None,
                      *, binary_inputs: bool = True) -> Any:  # fmt: skip
        return (model_name, tuple(tensor.name for tensor in inputs))

    def send(self, request: Any) -> Any:
        raise self.not_supported("single inferences (the toy only runs loads)")

    def close(self) -> None:
        pass


class FakeToySender(Sender):
    """Fake: a blocking call on the in-process server."""

    def __init__(self, server: FakeToyServer) -> None:
        self.server = server

    def call(self, request: Any) -> Outcome:
        if self.server.answer():
            return Outcome()
        return Outcome(error="FAKE 404", reason="fake: the model is not there")


class FakeToyTransport(Transport):
    protocol = "toy"
    title = "Toy (fake)"
    default_url = "in-process"
    modes = ("sync",)
    worker_kinds = ("thread",)

    def client(self, url: str, *, concurrency: int = 1, **options: Any) -> InferenceClient:
        return FakeToyClient(url, **options)

    def send_plan(self, client: InferenceClient, settings: SendSettings) -> SendPlan:
        self.check_mode(settings.mode)
        self.check_worker_kind(settings.worker_kind)
        server = SERVER

        def make_sender(runtime: WorkerRuntime) -> Sender:
            return FakeToySender(server)

        return SendPlan("thread", make_sender)


register(FakeToyTransport())
