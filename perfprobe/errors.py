"""User-facing failures that the CLI turns into one line on stderr and an exit code."""

from __future__ import annotations

from perfprobe import exitcodes


class PerfprobeError(Exception):
    """A failure with a message meant for the user and the exit code it maps to."""

    exit_code = exitcodes.INTERNAL_ERROR


class UsageError(PerfprobeError):
    """Bad arguments or input data (wrong shape, datatype, unreadable file)."""

    exit_code = exitcodes.USAGE


class AllRequestsFailed(PerfprobeError):
    """A sweep in which no request succeeded: the server refused everything."""

    exit_code = exitcodes.SERVER_ERROR


class ServerUnreachable(PerfprobeError):
    """The server stopped answering during a run (killed, restarted, network gone)."""

    exit_code = exitcodes.SERVER_UNREACHABLE


class LoadFailed(PerfprobeError):
    """The load itself broke (a worker ended early): the level would understate the load asked for."""

    exit_code = exitcodes.INTERNAL_ERROR
