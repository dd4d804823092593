"""Worker kinds: native threads or gevent greenlets, behind one small interface.

Greenlet workers share one thread and its gevent hub: HTTP requests on geventhttpclient
yield to each other by themselves, and gRPC calls are made as futures whose completion
(on grpc's own threads) wakes the waiting greenlet, so grpc never needs gevent patching.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

WORKER_KINDS = ("greenlet", "thread")


class Waiter:
    """A one-shot hand-over of a value from any thread to the worker waiting for it."""

    def set(self, value: Any) -> None:
        raise NotImplementedError

    def get(self, timeout_s: float | None = None) -> Any:
        raise NotImplementedError


class _ThreadWaiter(Waiter):
    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def set(self, value: Any) -> None:
        self._queue.put(value)

    def get(self, timeout_s: float | None = None) -> Any:
        return self._queue.get(timeout=timeout_s)


class _GreenletWaiter(Waiter):
    __slots__ = ("_result",)

    def __init__(self) -> None:
        import gevent.event

        self._result = gevent.event.AsyncResult()  # may be set from a native thread

    def set(self, value: Any) -> None:
        self._result.set(value)

    def get(self, timeout_s: float | None = None) -> Any:
        value = self._result.get(timeout=timeout_s)
        self._result = type(self._result)()
        return value


class Runtime:
    """Spawn, sleep and wait the way one worker kind does."""

    kind = ""

    def spawn(self, target: Callable[[], None], name: str) -> Any:
        raise NotImplementedError

    def join(self, handle: Any, timeout_s: float) -> bool:
        raise NotImplementedError

    def sleep(self, seconds: float) -> None:
        raise NotImplementedError

    def waiter(self) -> Waiter:
        raise NotImplementedError

    def identity(self) -> Any:
        """A key unique to the running worker (for per-worker recording slots)."""
        raise NotImplementedError


class ThreadRuntime(Runtime):
    kind = "thread"

    def spawn(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def join(self, handle: threading.Thread, timeout_s: float) -> bool:
        handle.join(timeout_s)
        return not handle.is_alive()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def waiter(self) -> Waiter:
        return _ThreadWaiter()

    def identity(self) -> Any:
        return threading.get_ident()


class GreenletRuntime(Runtime):
    kind = "greenlet"

    def __init__(self) -> None:
        import gevent

        self._gevent = gevent

    def spawn(self, target: Callable[[], None], name: str) -> Any:
        greenlet = self._gevent.spawn(target)
        greenlet.name = name
        return greenlet

    def join(self, handle: Any, timeout_s: float) -> bool:
        handle.join(timeout_s)
        return handle.dead

    def sleep(self, seconds: float) -> None:
        self._gevent.sleep(seconds)

    def waiter(self) -> Waiter:
        return _GreenletWaiter()

    def identity(self) -> Any:
        # greenlets of one thread never interleave inside a record call, so they share one
        # recording slot: one histogram per window instead of one per greenlet
        return threading.get_ident()


def make_runtime(kind: str) -> Runtime:
    if kind == "thread":
        return ThreadRuntime()
    if kind == "greenlet":
        return GreenletRuntime()
    raise ValueError(f"worker kind must be one of {WORKER_KINDS}, not {kind!r}")
