"""Worker kinds: native threads or gevent greenlets, behind one small interface.

Greenlet workers share one thread and its gevent hub: HTTP requests on geventhttpclient
yield to each other by themselves, and gRPC calls are made as futures whose completion
(on grpc's own threads) wakes the waiting greenlet, so grpc never needs gevent patching.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from perfprobe.load.pacing import AsyncPacer, GreenletPacer, Pacer, ThreadPacer
from perfprobe.transport.base import TIMED_OUT, Waiter

WORKER_KINDS = ("greenlet", "thread", "asyncio")


def usable_cores() -> int:
    """The cores this process may run on: ``--processes auto`` on one machine starts one load process each."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def drive(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a worker's coroutine to its end in one step, on a thread or greenlet that may block.

    The engine's loops are written once, as coroutines; on blocking worker kinds nothing they
    await suspends (each await blocks the thread or greenlet), so one ``send`` runs them through.
    """
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a worker on a blocking runtime awaited something that suspends (an asyncio call)")


async def settled(value: Any) -> Any:
    """``value``, awaited first when it is awaitable: a blocking or a coroutine method's result alike."""
    if inspect.isawaitable(value):
        return await value
    return value


class _ThreadWaiter(Waiter):
    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def set(self, value: Any) -> None:
        self._queue.put(value)

    def get(self, timeout_s: float | None = None) -> Any:
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return TIMED_OUT


class _GreenletWaiter(Waiter):
    __slots__ = ("_result", "_timeout")

    def __init__(self) -> None:
        import gevent
        import gevent.event

        self._result = gevent.event.AsyncResult()  # may be set from a native thread
        self._timeout = gevent.Timeout

    def set(self, value: Any) -> None:
        self._result.set(value)

    def get(self, timeout_s: float | None = None) -> Any:
        try:
            return self._result.get(timeout=timeout_s)
        except self._timeout:  # a BaseException: uncaught, it would end the worker greenlet
            return TIMED_OUT


class Runtime:
    """Spawn, sleep and wait the way one worker kind does."""

    kind = ""

    def close(self) -> None:
        """Release what the runtime holds between levels (an event loop's thread)."""

    def interrupt(self, handle: Any) -> None:
        """While stopping: end a worker's wait at once where the kind allows it (coroutines)."""

    def spawn(self, target: Callable[[], None], name: str, keep: Callable[[Any], None]) -> None:
        """Start ``target``; its handle goes to ``keep`` before it can run.

        So a Ctrl-C raised inside the start (a thread's start waits for the thread) never leaves a
        running worker that nobody can join.
        """
        raise NotImplementedError

    def join(self, handle: Any, timeout_s: float) -> bool:
        """Wait for a worker; True once it ended (or never started: ``handle`` None)."""
        raise NotImplementedError

    def sleep(self, seconds: float) -> None:
        raise NotImplementedError

    async def nap(self, seconds: float) -> None:
        """A worker's sleep, awaited: it blocks a thread or greenlet, and suspends a coroutine."""
        self.sleep(seconds)

    def start_worker(
        self, life: Callable[[], Coroutine[Any, Any, None]], name: str, keep: Callable[[Any], None]
    ) -> None:
        """Start a worker whose life is the coroutine ``life()``; blocking kinds drive it to its end."""
        self.spawn(lambda: drive(life()), name, keep)

    def waiter(self) -> Waiter:
        raise NotImplementedError

    def pacer(self) -> Pacer:
        """A worker's own way of sleeping until an open-loop send's instant (``perfprobe.load.pacing``)."""
        raise NotImplementedError

    def identity(self) -> Any:
        """A key unique to the running worker (for per-worker recording slots)."""
        raise NotImplementedError


class ThreadRuntime(Runtime):
    kind = "thread"

    def spawn(self, target: Callable[[], None], name: str, keep: Callable[[Any], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        keep(thread)
        thread.start()

    def join(self, handle: threading.Thread | None, timeout_s: float) -> bool:
        if handle is None:
            return True
        try:
            handle.join(timeout_s)
        except RuntimeError:  # its start() was interrupted before the thread ran: nothing to wait for
            return True
        return not handle.is_alive()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def waiter(self) -> Waiter:
        return _ThreadWaiter()

    def pacer(self) -> Pacer:
        return ThreadPacer()

    def identity(self) -> Any:
        return threading.get_ident()


class GreenletRuntime(Runtime):
    kind = "greenlet"

    def __init__(self) -> None:
        import gevent

        self._gevent = gevent

    def spawn(self, target: Callable[[], None], name: str, keep: Callable[[Any], None]) -> None:
        greenlet = self._gevent.Greenlet(target)
        greenlet.name = name
        keep(greenlet)
        greenlet.start()

    def join(self, handle: Any, timeout_s: float) -> bool:
        if handle is None:
            return True
        handle.join(timeout_s)
        return handle.dead

    def sleep(self, seconds: float) -> None:
        self._gevent.sleep(seconds)

    def waiter(self) -> Waiter:
        return _GreenletWaiter()

    def pacer(self) -> Pacer:
        return GreenletPacer()

    def identity(self) -> Any:
        # greenlets of one thread never interleave inside a record call, so they share one
        # recording slot: one histogram per window instead of one per greenlet
        return threading.get_ident()


class AsyncioRuntime(Runtime):
    """Coroutine workers on one asyncio event loop, in a thread of its own.

    The controller (the sweeper) stays in the caller's thread and sleeps there; workers run on
    the loop and record into that thread's one slot (coroutines never interleave inside a
    record call). ``close`` stops the loop once the run is over.
    """

    kind = "asyncio"

    def __init__(self) -> None:
        import asyncio

        self._asyncio = asyncio
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(_quiet_about_closed_pollers)
        self._thread = threading.Thread(target=self.loop.run_forever, name="perfprobe-asyncio", daemon=True)
        self._thread.start()

    def spawn(self, target: Callable[[], Any], name: str, keep: Callable[[Any], None]) -> None:
        # a task scheduled here whose future an interrupt kept from ``keep`` is cancelled by ``close``
        keep(self._asyncio.run_coroutine_threadsafe(target(), self.loop))

    def join(self, handle: Any, timeout_s: float) -> bool:
        import concurrent.futures

        if handle is None:
            return True
        done, _ = concurrent.futures.wait([handle], timeout=timeout_s)
        return bool(done)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)  # the controller's thread, not the loop's

    async def nap(self, seconds: float) -> None:
        await self._asyncio.sleep(seconds)

    def start_worker(
        self, life: Callable[[], Coroutine[Any, Any, None]], name: str, keep: Callable[[Any], None]
    ) -> None:
        self.spawn(life, name, keep)

    def interrupt(self, handle: Any) -> None:
        # a stopping run keeps nothing of the requests still in flight, and an await on a stream
        # the server dropped can outlast the stop otherwise: cancel the worker's task
        if handle is not None:
            handle.cancel()

    def waiter(self) -> Waiter:
        raise NotImplementedError("coroutine workers await their calls; they need no waiter")

    def pacer(self) -> AsyncPacer:
        return AsyncPacer()

    def identity(self) -> Any:
        return self._thread.ident

    async def _cancel_remaining(self) -> None:
        asyncio = self._asyncio
        current = asyncio.current_task()
        remaining = [task for task in asyncio.all_tasks() if task is not current]
        for task in remaining:
            task.cancel()
        await asyncio.gather(*remaining, return_exceptions=True)
        await self.loop.shutdown_asyncgens()

    def close(self) -> None:
        if self.loop.is_closed():
            return
        # grpc.aio leaves tasks of its own behind a cancelled call: end them on the loop, so none
        # is destroyed pending (asyncio says so on stderr) when the loop closes
        finishing = self._asyncio.run_coroutine_threadsafe(self._cancel_remaining(), self.loop)
        with contextlib.suppress(Exception):  # closing anyway: a stuck task is not worth a hang
            finishing.result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


def _quiet_about_closed_pollers(loop: Any, context: dict[str, Any]) -> None:
    """Drop one known harmless report: grpc.aio's poller woken on a descriptor it already closed.

    When the server dies, grpc.aio can shut its completion queue while the loop still holds the
    queue's reader callback; the callback then fails with EBADF and asyncio prints a traceback
    on stderr, after the run's one-line error. Everything else goes to asyncio's usual handler.
    """
    exception = context.get("exception")
    if (
        isinstance(exception, OSError)
        and exception.errno == errno.EBADF
        and "_handle_events" in "".join(traceback.format_tb(exception.__traceback__))
    ):
        return
    loop.default_exception_handler(context)


def make_runtime(kind: str) -> Runtime:
    if kind == "thread":
        return ThreadRuntime()
    if kind == "greenlet":
        return GreenletRuntime()
    if kind == "asyncio":
        return AsyncioRuntime()
    raise ValueError(f"worker kind must be one of {WORKER_KINDS}, not {kind!r}")
