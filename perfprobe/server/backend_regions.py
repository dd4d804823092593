"""The python backend's shared-memory regions, which a server that was killed leaves in /dev/shm.

Triton's python backend gives each stub a region (a megabyte or more) and unlinks it when the
server shuts down; a server killed outright (SIGKILL, a crash) never does, and /dev/shm, often
64 MB in a container, fills up run after run. The embedded server notes which regions existed
before it started; once it is gone, the regions that appeared meanwhile and that no live process
has mapped or open are its own leftovers, and are unlinked. A region another running server
uses is always mapped by it, so it is never touched.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

REGION_PREFIX = "triton_python_backend_shm_region_"
SHM_DIR = Path("/dev/shm")
PROC = Path("/proc")


def backend_regions(shm_dir: Path = SHM_DIR) -> set[str]:
    """The python backend's region names present now (none where there is no /dev/shm)."""
    try:
        return {entry.name for entry in os.scandir(shm_dir) if entry.name.startswith(REGION_PREFIX)}
    except OSError:
        return set()


def regions_in_use(shm_dir: Path = SHM_DIR, proc: Path = PROC) -> set[str] | None:
    """The region names some live process has mapped or open; None where that cannot be told."""
    if not proc.is_dir():
        return None
    prefix = f"{shm_dir}/{REGION_PREFIX}"
    in_use: set[str] = set()
    for entry in os.scandir(proc):
        if entry.name.isdigit():  # a process that ends meanwhile, or is not ours to read, shows nothing
            in_use |= _mapped(Path(entry.path), prefix) | _open(Path(entry.path), prefix)
    return in_use


def _mapped(process: Path, prefix: str) -> set[str]:
    found = set()
    with contextlib.suppress(OSError), open(process / "maps", errors="replace") as maps:
        for line in maps:
            start = line.find(prefix)
            if start >= 0:
                found.add(_region_name(line[start:], prefix))
    return found


def _open(process: Path, prefix: str) -> set[str]:
    found = set()
    with contextlib.suppress(OSError):
        for fd in os.scandir(process / "fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd.path)
                if target.startswith(prefix):
                    found.add(_region_name(target, prefix))
    return found


def _region_name(path_text: str, prefix: str) -> str:
    """``/dev/shm/NAME`` (maybe followed by `` (deleted)``) → NAME."""
    return REGION_PREFIX + path_text[len(prefix) :].split()[0]


def regions_of_group(group_id: int, shm_dir: Path = SHM_DIR, proc: Path = PROC) -> set[str]:
    """The regions the processes of one process group (a server and its stubs) have mapped or open."""
    prefix = f"{shm_dir}/{REGION_PREFIX}"
    found: set[str] = set()
    with contextlib.suppress(OSError):
        for entry in os.scandir(proc):
            if entry.name.isdigit() and _group_of(Path(entry.path)) == group_id:
                found |= _mapped(Path(entry.path), prefix) | _open(Path(entry.path), prefix)
    return found


def _group_of(process: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError), open(process / "stat") as stat:
        return int(stat.read().rpartition(")")[2].split()[2])
    return None


def group_running(group_id: int, proc: Path = PROC) -> bool:
    """Whether a process of this process group still runs (a zombie has let go of its memory); False without /proc."""
    if not proc.is_dir():
        return False
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError), open(Path(entry.path) / "stat") as stat:
            # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after the last ")"
            state, _, group = stat.read().rpartition(")")[2].split()[:3]
            if int(group) == group_id and state != "Z":
                return True
    return False


def await_group_end(group_id: int, timeout_s: float, proc: Path = PROC, poll_s: float = 0.02) -> bool:
    """Wait until no process of the group runs; False if one still does after ``timeout_s``.

    A process sent SIGKILL keeps its mappings until the kernel has torn it down, so a region
    looked at right after the signal still reads as in use by a backend stub that is dying.
    """
    deadline = time.monotonic() + timeout_s
    while group_running(group_id, proc):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


def release_leftovers(appeared: set[str], shm_dir: Path = SHM_DIR, proc: Path = PROC) -> list[str]:
    """Unlink the regions of ``appeared`` that no live process uses; the names unlinked."""
    if not appeared:
        return []
    in_use = regions_in_use(shm_dir, proc)
    if in_use is None:  # no way to tell a leftover from a region in use: leave them all
        return []
    released = []
    for name in sorted(appeared - in_use):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            (shm_dir / name).unlink()
            released.append(name)
    return released
