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
