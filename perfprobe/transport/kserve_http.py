"""KServe v2 inference over HTTP/1.1 (``POST /v2/models/{m}/infer``), Triton's binary tensor extension by default.

Every worker keeps a connection of its own and blocks on it: a greenlet on one of
geventhttpclient's cooperative sockets, a thread on a plain socket of its own. Threads are the
default while a process keeps at most ``THREADS_UP_TO`` requests in flight: a thread blocked on its
own socket skips gevent's hub round per answer, a fifth to a third less client CPU per request;
from eight in flight on, greenlets sustain more requests per second (``docs/benchmarks.md``).
"""

from __future__ import annotations

from typing import Any

from perfprobe.client import InferenceClient, make_client
from perfprobe.transport import register
from perfprobe.transport.base import BlockingSender, SendPlan, SendSettings, Transport, WorkerRuntime

THREADS_UP_TO = 4  # a process keeping at most this many requests in flight runs them on threads


class KServeHttp(Transport):
    protocol = "http"
    title = "HTTP"
    default_url = "localhost:8000"
    modes = ("sync", "async")
    worker_kinds = ("thread", "greenlet")
    json_tensors = True

    def client(self, url: str, *, concurrency: int = 1, **options: Any) -> InferenceClient:
        return make_client("http", url, concurrency=concurrency, **options)

    def default_worker_kind(self, mode: str, connection: str, in_flight_per_process: int | None) -> str:
        few = in_flight_per_process is not None and in_flight_per_process <= THREADS_UP_TO
        return "thread" if few and mode == "sync" else "greenlet"

    def needs_greenlets(self, mode: str, worker_kind: str) -> bool:
        return worker_kind == "greenlet" or mode == "async"

    def send_plan(self, client: InferenceClient, settings: SendSettings) -> SendPlan:
        self.check_mode(settings.mode)
        self.check_worker_kind(settings.worker_kind)
        kind, notes = settings.worker_kind, []
        if settings.mode == "async" and kind == "thread":
            notes.append("http async requests run on greenlets; --workers thread has no effect for them")
            kind = "greenlet"
        blocking = kind == "thread"  # a greenlet keeps one connection of the client's pool
        decode = settings.decode_outputs

        def make_sender(runtime: WorkerRuntime) -> BlockingSender:
            return BlockingSender(client.dedicated(blocking=blocking), decode=decode)

        return SendPlan(kind, make_sender, notes)


register(KServeHttp())
