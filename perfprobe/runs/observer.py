"""What a run tells whoever watches it, as it goes: the library prints nothing by itself.

The command line passes a console observer (the live table, warnings, the summary); a Python
caller passes its own, or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perfprobe.load.sweeper import LevelResult, WindowRecord
    from perfprobe.runs.result import SweepResult


@dataclass(frozen=True)
class SweepStart:
    """What a sweep is about to load, once the model is known."""

    model: str
    protocol: str
    url: str
    mode: str
    worker_kind: str
    shared_memory: str
    load_kind: str
    levels: str
    batch_size: int
    processes: int = 1  # load processes (``--processes``, ``--cluster``)


class RunObserver:
    """Called by sweeps and compares at each step; every method does nothing unless overridden."""

    def note(self, text: str) -> None:
        """Something the user should know that is not a measurement (a setting without effect)."""

    def section(self, title: str) -> None:
        """A compare moves on to its next cell."""

    def started(self, start: SweepStart) -> None:
        """A sweep's load is about to begin."""

    def window(self, level: LevelResult, record: WindowRecord) -> None:
        """One measurement window closed."""

    def level_done(self, level: LevelResult) -> None:
        """One load level finished (its warnings are final)."""

    def decided(self, text: str) -> None:
        """The level search stopped, or found the level it was looking for."""

    def finished(self, result: SweepResult) -> None:
        """The sweep ended (every level done, or interrupted with the levels measured so far)."""
