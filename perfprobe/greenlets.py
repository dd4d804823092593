"""gevent's monkey-patching for greenlet workers: one call, made before the load, never at import.

Greenlet workers share one thread; anything in it that blocks the standard library's way
(a socket read, ``time.sleep``) stalls every worker. Patching makes those cooperative. It must
happen before ``ssl`` and ``socket`` users are imported, so the command line does it right
after parsing its arguments, and a Python caller does it first thing:

    import perfprobe
    perfprobe.patch_for_greenlets()

Threads stay native (grpcio's completion callbacks run on real threads), and so do signals.
"""

from __future__ import annotations


def patch_for_greenlets() -> None:
    """Make sockets, ``ssl`` and sleeps cooperative for greenlet workers (once; later calls do nothing)."""
    from gevent import monkey

    if monkey.is_module_patched("socket"):
        return
    monkey.patch_all(thread=False, queue=False, subprocess=False, signal=False, os=False)
    quiet_interrupts()


def quiet_interrupts() -> None:
    """Ctrl-C or SIGTERM landing while gevent's hub waits (an HTTP call to a server that does not answer)
    is reported once, by the command, not also printed by the hub. Every hub, in every thread."""
    from gevent.hub import Hub

    if KeyboardInterrupt not in Hub.NOT_ERROR:
        Hub.NOT_ERROR = (*Hub.NOT_ERROR, KeyboardInterrupt)


def patched() -> bool:
    """Whether ``patch_for_greenlets`` (or an equivalent ``patch_all``) has run in this process."""
    import sys

    if "gevent.monkey" not in sys.modules:
        return False
    from gevent import monkey

    return monkey.is_module_patched("socket")
