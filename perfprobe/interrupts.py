"""Ctrl-C and SIGTERM: one way in (KeyboardInterrupt), and clean-up that repeated signals cannot cut short.

A run that created shared memory must release it on every way out. The first signal stops the
run and its ``finally`` blocks clean up; signals arriving during that clean-up are held back
until it is done, and only a third signal forces the process out, after saying what it leaves.
Once the interrupted run has cleaned up, later signals are ignored: it exits with 130.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from perfprobe import exitcodes

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


_signalled = False  # a signal has interrupted this run (``signals_as_interrupt``) already


def _raise_interrupt(*_: object) -> None:
    """KeyboardInterrupt where the run can stop cleanly.

    A signal that lands while a greenlet worker runs is not raised inside it: half-way through a step's
    bookkeeping (a sequence's step taken but not yet the worker's to settle), an exception leaves state
    that nobody settles, and the sequence never gets its END. The run's first signal is thrown into the
    main greenlet instead, at its next wait, which the sweeper reaches within a poll (gevent's hub does
    the same with a signal that lands while it runs); a later one landing in a worker is dropped, as the
    worker it used to end absorbed it, so it cannot cut the clean-up the first one started in half.
    """
    global _signalled
    first, _signalled = not _signalled, True
    main = _main_greenlet_if_in_a_worker()
    if main is None:
        raise KeyboardInterrupt
    if first:
        import gevent

        gevent.get_hub().loop.run_callback(main.throw, KeyboardInterrupt)


def _main_greenlet_if_in_a_worker() -> Any:
    """The thread's main greenlet when a greenlet other than it and gevent's hub is running; else None."""
    if "gevent" not in sys.modules:
        return None  # no greenlet workers in this process
    import gevent
    import greenlet

    current = greenlet.getcurrent()
    if current.parent is None or current is gevent.get_hub():
        return None
    main = current
    while main.parent is not None:
        main = main.parent
    return main


@contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt where the run can stop cleanly (never inside a greenlet
    worker), so every ``finally`` runs and results are kept."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread can take signals; a library caller in a thread keeps its own
        return
    global _signalled
    _signalled = False
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in _SIGNALS}
    try:
        yield
    except KeyboardInterrupt:
        ignore_late_signals()
        raise
    finally:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is _raise_interrupt:  # not told to ignore late signals meanwhile
                signal.signal(sig, handler)


def ignore_late_signals() -> None:
    """Interrupted and cleaned up, on the way out: a late Ctrl-C or SIGTERM must not turn the
    documented exit code (130) into a death by signal."""
    if threading.current_thread() is threading.main_thread():
        for sig in _SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


class Shield:
    """What ``shielded`` gives its block: a way to finish every clean-up step whatever is thrown in.

    Holding signals back is not enough under greenlet workers: a signal taken by a worker greenlet
    before the shield went up is thrown into the main greenlet by gevent's hub at its next wait,
    which may be a clean-up step's network call. ``step`` keeps that interrupt from skipping the
    steps after it; it is raised once the block is done, like a held-back signal.
    """

    def __init__(self) -> None:
        self.interrupted = False

    @contextmanager
    def step(self) -> Iterator[None]:
        try:
            yield
        except KeyboardInterrupt:
            self.interrupted = True


@contextmanager
def shielded(left_behind: Callable[[], list[str]], force_after: int | None = 2) -> Iterator[Shield]:
    """Hold SIGINT and SIGTERM back while the block runs (clean-up); re-raise once it is done.

    The ``force_after``-th signal during the block ends the process at once (exit 130), after one
    line naming what ``left_behind`` says is still not cleaned up; ``None`` never forces (a block
    so short that a forced exit would only skip the clean-up after it).
    """
    shield = Shield()
    received: list[int] = []

    def hold(signum: int, frame: object) -> None:
        received.append(signum)
        if force_after is not None and len(received) >= force_after:
            remaining = left_behind()
            sys.stderr.write(
                "perfprobe: error: interrupted again during clean-up: forced exit; left behind: "
                + (", ".join(remaining) if remaining else "nothing")
                + "\n"
            )
            sys.stderr.flush()
            os._exit(exitcodes.INTERRUPTED)

    on_main_thread = threading.current_thread() is threading.main_thread()  # only it can take signals
    previous = {sig: signal.signal(sig, hold) for sig in _SIGNALS} if on_main_thread else {}
    try:
        yield shield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received or shield.interrupted:
        raise KeyboardInterrupt
