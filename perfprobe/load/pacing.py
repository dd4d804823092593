"""Waiting for an open-loop send's intended instant: within tens of microseconds, without a busy core.

gevent's and asyncio's timers wake up to a millisecond late: their epoll waits count whole
milliseconds. Yielding in a loop through that last millisecond made sends punctual but cost a
millisecond of client CPU per send (a whole core at 1,000 requests/s), CPU taken from a server on
the same machine and reported as perfprobe's own. A Linux timerfd armed for the instant wakes the
same event loop within tens of microseconds (a thread blocks reading one), and re-armed for "now"
by a stopping load it ends a wait for a send minutes away; the engine then yields through only
the last ``spin_ns`` (``--send-spin``), by default nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

_now = time.perf_counter_ns
COARSE_TIMER_LATENESS_NS = 1_000_000  # how late gevent's and asyncio's own timers may wake (whole-ms epoll waits)
CLOCK_MONOTONIC = 1
TFD_TIMER_ABSTIME = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = getattr(os, "O_CLOEXEC", 0o2000000)


class _Timespec(ctypes.Structure):
    _fields_ = [("seconds", ctypes.c_long), ("nanoseconds", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("interval", _Timespec), ("value", _Timespec)]


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, looked up once (each worker of each level makes a timerfd)."""
    return ctypes.CDLL(None, use_errno=True)


@functools.cache
def _perf_counter_is_monotonic() -> bool:
    """A timerfd counts on CLOCK_MONOTONIC; the engine's instants are ``perf_counter_ns``."""
    return time.get_clock_info("perf_counter").implementation == "clock_gettime(CLOCK_MONOTONIC)"


class TimerFd:
    """A Linux timerfd on CLOCK_MONOTONIC, armed for absolute ``perf_counter_ns`` instants.

    Its descriptor turns readable at the instant, so any event loop waits for it like a socket
    (non-blocking), or a native thread blocks reading it (blocking). Re-arming it from another
    thread moves the instant, which is how a wait is cut short.
    """

    def __init__(self, blocking: bool = False) -> None:
        flags = TFD_CLOEXEC if blocking else TFD_NONBLOCK | TFD_CLOEXEC
        if hasattr(os, "timerfd_create"):  # Python 3.13+
            self.fd = os.timerfd_create(CLOCK_MONOTONIC, flags=flags)
            self._settime: Callable[[int], None] = self._settime_os
        else:
            self._libc = _libc()
            self.fd = self._libc.timerfd_create(CLOCK_MONOTONIC, flags)
            if self.fd < 0:
                raise OSError(ctypes.get_errno(), "timerfd_create failed")
            self._settime = self._settime_libc

    def _settime_os(self, deadline_ns: int) -> None:
        os.timerfd_settime_ns(self.fd, flags=TFD_TIMER_ABSTIME, initial=deadline_ns)  # type: ignore[attr-defined]

    def _settime_libc(self, deadline_ns: int) -> None:
        seconds, nanoseconds = divmod(deadline_ns, 1_000_000_000)
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(seconds, nanoseconds))
        if self._libc.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def arm(self, deadline_ns: int) -> None:
        """Readable from ``deadline_ns`` on (at once if it has passed, as 0 has)."""
        self._settime(max(deadline_ns, 1))  # an instant of exactly 0 would disarm it

    def consume(self) -> None:
        """Read the expiry, so the descriptor is not readable until armed again."""
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)

    def close(self) -> None:
        os.close(self.fd)


def make_timerfd(blocking: bool) -> TimerFd | None:
    """A timerfd where the system has one and it counts on the engine's clock; None elsewhere."""
    if not sys.platform.startswith("linux") or not _perf_counter_is_monotonic():
        return None
    try:
        return TimerFd(blocking)
    except (OSError, AttributeError):
        return None


class Pacer:
    """One worker's way of sleeping until an instant, which ``wake`` (from any thread) cuts short for good.

    ``precise``: it wakes within tens of microseconds of the instant (else up to a millisecond late).
    Without a timerfd it waits on ``event`` (its kind's own), which ``wake`` sets.
    """

    def __init__(self, blocking: bool, event: Any = None) -> None:
        self._timer = make_timerfd(blocking)
        self._event = event
        self._woken = False
        self._closing = threading.Lock()  # a wake from the controller never arms a descriptor closed meanwhile
        self.precise = self._timer is not None

    def wait_until(self, deadline_ns: int) -> None:
        raise NotImplementedError

    def _arm(self, deadline_ns: int) -> bool:
        """Arm the timer; False if the pacer was woken, before or meanwhile (then wait for nothing)."""
        assert self._timer is not None
        self._timer.arm(deadline_ns)
        # ``wake`` sets the flag before it arms the timer for now: a wake that came before this
        # check is seen here, and one after it re-arms the timer this arming set
        return not self._woken

    def _wait_on_event(self, deadline_ns: int) -> None:
        self._event.wait(max(deadline_ns - _now(), 0) / 1e9)

    def wake(self) -> None:
        """End the current wait and every later one at once (the load is stopping)."""
        self._woken = True
        with self._closing:
            if self._timer is not None:
                self._timer.arm(0)
            elif self._event is not None:
                self._event.set()

    def close(self) -> None:
        with self._closing:
            if self._timer is not None:
                self._timer.close()
                self._timer = None


class ThreadPacer(Pacer):
    """A native thread blocks reading its timerfd; without one, waits on a ``threading.Event``."""

    def __init__(self) -> None:
        super().__init__(blocking=True, event=threading.Event())
        self.precise = True  # clock_nanosleep-like either way: a futex wait with a timeout is as close

    def wait_until(self, deadline_ns: int) -> None:
        if self._timer is None:
            self._wait_on_event(deadline_ns)
        elif self._arm(deadline_ns):
            os.read(self._timer.fd, 8)


class GreenletPacer(Pacer):
    """The timerfd waited for through gevent's hub; without one, gevent's own (coarse) event wait.

    ``wake`` comes from the controller's greenlet, on this same thread, so a gevent event may be set.
    """

    def __init__(self) -> None:
        import gevent.event
        from gevent.socket import wait_read

        super().__init__(blocking=False, event=gevent.event.Event())
        self._wait_read = wait_read

    def wait_until(self, deadline_ns: int) -> None:
        if self._timer is None:
            self._wait_on_event(deadline_ns)
        elif self._arm(deadline_ns):
            self._wait_read(self._timer.fd)
            self._timer.consume()


class AsyncPacer(Pacer):
    """The same for a coroutine worker: the timerfd as a reader of the running asyncio loop.

    Without a timerfd it sleeps asyncio's way; a stopping load cancels coroutine workers anyway.
    """

    def __init__(self) -> None:
        super().__init__(blocking=False)

    async def wait_until(self, deadline_ns: int) -> None:  # type: ignore[override]
        import asyncio

        if self._timer is None:
            await asyncio.sleep(max(deadline_ns - _now(), 0) / 1e9)
            return
        if not self._arm(deadline_ns):
            return
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[Any] = loop.create_future()
        fd = self._timer.fd
        loop.add_reader(fd, lambda: woken.done() or woken.set_result(None))
        try:
            await woken
        finally:
            loop.remove_reader(fd)
            self._timer.consume()
