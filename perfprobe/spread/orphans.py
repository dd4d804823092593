"""Shared memory left by a load process that died: found by its name token, unregistered and unlinked."""

from __future__ import annotations

import contextlib
import os

from perfprobe.client import InferenceClient
from perfprobe.shm.system import NAME_PREFIX, SHM_DIR


def release_orphans(control: InferenceClient, token: str, kind: str) -> list[str]:
    """Unregister the server's regions named with ``token`` and unlink our segments; the problems met."""
    problems: list[str] = []
    prefix = f"{NAME_PREFIX}_{token}_"
    status = control.cuda_shared_memory_status if kind == "cuda" else control.system_shared_memory_status
    unregister = control.unregister_cuda_shared_memory if kind == "cuda" else control.unregister_system_shared_memory
    try:
        names = [name for name in status() if name.startswith(prefix)]
    except Exception as exc:  # the server is gone too: nothing is registered there any more
        names = []
        problems.append(f"could not list the server's {kind} shared memory: {exc}")
    for name in names:
        try:
            unregister(name)
        except Exception as exc:
            problems.append(f"unregister {name}: {exc}")
    if kind == "system":
        with contextlib.suppress(FileNotFoundError):
            for entry in os.listdir(SHM_DIR):
                if entry.startswith(prefix):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(SHM_DIR, entry))
    return problems
