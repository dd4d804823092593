"""Open files for a load: each request in flight holds a socket, and in open loop a timerfd too;
system shared memory holds a descriptor per region (one per data item, one per worker's outputs).

Many systems start processes with a soft limit of 1,024 open files and a far higher hard limit,
so ``--concurrency 2000`` would fail part-way with "Too many open files". A load process raises
its soft limit as far as the load needs (never past the hard limit, and never lowers it), and a
load the hard limit cannot hold is refused before it starts, in one line.
"""

from __future__ import annotations

from perfprobe.errors import UsageError

FILES_PER_REQUEST_IN_FLIGHT = 2  # its connection, and an open-loop worker's timerfd
FILES_BESIDE_THE_LOAD = 64  # the interpreter's own, the control client, the results, shared memory


def files_needed(in_flight: int, regions: int = 0) -> int:
    return in_flight * FILES_PER_REQUEST_IN_FLIGHT + regions + FILES_BESIDE_THE_LOAD


def ensure_open_files(in_flight: int, regions: int = 0) -> None:
    """Let this process open enough files for ``in_flight`` requests and ``regions`` shared-memory
    regions, or say why it cannot."""
    try:
        import resource
    except ImportError:  # not a POSIX system: nothing to raise
        return
    needed = files_needed(in_flight, regions)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise UsageError(
            f"{in_flight} requests in flight{_with(regions)} need about {needed} open files in one load process, "
            f"and this system allows {hard} (ulimit -Hn): raise that limit, or spread the load (--processes N)"
        )
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    except (ValueError, OSError) as exc:
        raise UsageError(
            f"{in_flight} requests in flight{_with(regions)} need about {needed} open files in one load process; "
            f"the limit is {soft} and raising it failed ({exc}): raise it (ulimit -n)"
        ) from None


def _with(regions: int) -> str:
    return f" and {regions} shared-memory regions" if regions else ""
