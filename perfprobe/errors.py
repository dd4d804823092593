"""Failures a run ends with: each carries the exit code the command line maps it to.

A run that measured some levels before it failed attaches them as ``result`` (a
``SweepResult``), so a library caller keeps what the command line writes out.
"""

from __future__ import annotations

from typing import Any

from perfprobe import exitcodes


class PerfprobeError(Exception):
    """A failure with a message meant for the user and the exit code it maps to."""

    exit_code = exitcodes.INTERNAL_ERROR

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class UsageError(PerfprobeError):
    """Bad arguments or input data (wrong shape, datatype, unreadable file)."""

    exit_code = exitcodes.USAGE


class ResultsNotWritten(UsageError):
    """The output directory stopped taking files mid-run (disk full, removed): what was written stays whole."""


class AllRequestsFailed(PerfprobeError):
    """A sweep with a level where no request succeeded, in all its windows (the model went away) or in one (a stall)."""

    exit_code = exitcodes.SERVER_ERROR


class ServerUnreachable(PerfprobeError):
    """The server stopped answering during a run (killed, restarted, network gone)."""

    exit_code = exitcodes.SERVER_UNREACHABLE


class LoadFailed(PerfprobeError):
    """The load itself broke (a worker ended early): the level would understate the load asked for."""

    exit_code = exitcodes.INTERNAL_ERROR


class LoadProcessLost(PerfprobeError):
    """A load process (``--processes``) or a cluster node died mid-run: the level cannot be measured."""

    exit_code = exitcodes.SERVER_ERROR


class ClusterUnavailable(PerfprobeError):
    """``--cluster`` without Ray installed, or a cluster that cannot be reached or cannot place the load."""

    exit_code = exitcodes.SERVER_UNAVAILABLE


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run; ``result`` holds the levels (or cells) measured before it.

    A KeyboardInterrupt, so code that stops on Ctrl-C still stops; never an ``Exception``.
    """

    exit_code = exitcodes.INTERRUPTED

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result
