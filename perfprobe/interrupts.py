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

from perfprobe import exitcodes

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt as Ctrl-C does, so every ``finally`` runs and results are kept."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread can take signals; a library caller in a thread keeps its own
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    except KeyboardInterrupt:
        ignore_late_signals()
        raise
    finally:
        if signal.getsignal(signal.SIGTERM) is _raise_interrupt:  # not told to ignore late signals meanwhile
            signal.signal(signal.SIGTERM, previous)


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
