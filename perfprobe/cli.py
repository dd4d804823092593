"""The ``perfprobe`` command: parse arguments, run a subcommand, map failures to exit codes.

Every user mistake ends as one line on stderr and a documented exit code (see
``perfprobe.exitcodes``); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import traceback

from perfprobe import __version__, exitcodes


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line with our usage exit code.

    Abbreviated options are off: ``--mode`` must not silently mean ``--model``.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> object:
        """``--flag=--`` is no value (argparse would hand the option an empty list)."""
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {action.option_strings[-1]}: expected a value, not '--'")
        return super()._get_values(action, arg_strings)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"perfprobe: error: {message}{self._nearest_options(message)}\n")
        raise SystemExit(exitcodes.USAGE)

    def _nearest_options(self, message: str) -> str:
        """For a misspelled flag: the options it is closest to (``--concurency``: ``--concurrency``)."""
        if not message.startswith("unrecognized arguments:"):
            return ""
        known = sorted(self._all_options())
        guesses = []
        for word in message.split(":", 1)[1].split():
            flag = word.split("=", 1)[0]
            if flag.startswith("--"):
                guesses += difflib.get_close_matches(flag, known, n=1, cutoff=0.75)
        return f" (did you mean {', '.join(dict.fromkeys(guesses))}?)" if guesses else ""

    def _all_options(self) -> set[str]:
        """Every long option of this parser and of its commands."""
        options: set[str] = set()
        for action in self._actions:
            options.update(flag for flag in action.option_strings if flag.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                for command in action.choices.values():
                    options.update(command._all_options() if isinstance(command, _Parser) else ())
        return options


def build_parser() -> argparse.ArgumentParser:
    from perfprobe.commands import compare, describe, diff, gate, history, infer, report, serve, sweep

    parser = _Parser(prog="perfprobe", description="Load generator and performance analyzer for Triton / KServe v2.")
    parser.add_argument("--version", action="version", version=f"perfprobe {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve.add_parser(subparsers)
    infer.add_parser(subparsers)
    describe.add_parsers(subparsers)
    sweep.add_parser(subparsers)
    compare.add_parser(subparsers)
    report.add_parser(subparsers)
    diff.add_parser(subparsers)
    gate.add_parser(subparsers)
    history.add_parser(subparsers)
    return parser


def _wants_greenlets(args: argparse.Namespace) -> bool:
    """A command that drives load (it has ``--workers``) with settings that run greenlet workers."""
    if not hasattr(args, "workers"):
        return False
    from perfprobe.runs.options import SweepOptions, process_count, worker_kind
    from perfprobe.transport import transport_for

    options = SweepOptions.from_namespace(args)
    if options.cluster or process_count(options) != 1:
        return False  # the load runs in load processes, each patching for itself; this one only coordinates
    return transport_for(options.protocol, options.endpoint).needs_greenlets(options.mode, worker_kind(options))


def _fail(code: int, message: str) -> int:
    sys.stderr.write(f"perfprobe: error: {message}\n")
    return code


def run(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    # grpc's core logs a failed TLS handshake on stderr as well; the error's one line says it already
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "config", None):
            from perfprobe.commands.config_file import apply_config

            args = apply_config(parser, args, argv)
        if _wants_greenlets(args):
            from perfprobe.greenlets import patch_for_greenlets

            patch_for_greenlets()  # before the command imports sockets, ssl or the clients
        from perfprobe.greenlets import quiet_interrupts

        quiet_interrupts()
        from perfprobe.interrupts import ignore_late_signals, signals_as_interrupt

        with signals_as_interrupt():
            code = int(args.run(args) or 0)
            if code == exitcodes.INTERRUPTED:  # the command kept what it measured and said so
                ignore_late_signals()
            return code
    except KeyboardInterrupt:
        return _fail(exitcodes.INTERRUPTED, "interrupted")
    except Exception as exc:
        return _report_failure(exc, args.debug)


def _report_failure(exc: Exception, debug: bool) -> int:
    """One line on stderr and the exit code that says what kind of failure it was."""
    from perfprobe.client.errors import InferenceServerError
    from perfprobe.errors import PerfprobeError
    from perfprobe.server import ServerNotInstalled, ServerStartError

    if debug:
        traceback.print_exc()
    if isinstance(exc, PerfprobeError):
        return _fail(exc.exit_code, str(exc))
    if isinstance(exc, InferenceServerError):
        code = exitcodes.SERVER_UNREACHABLE if exc.no_answer else exitcodes.SERVER_ERROR
        return _fail(code, exc.message + _no_server_hint(exc) if exc.no_answer else f"server: {exc.message}")
    if isinstance(exc, (ServerNotInstalled, ServerStartError)):
        return _fail(exitcodes.SERVER_UNAVAILABLE, str(exc).splitlines()[0])
    if isinstance(exc, OSError) and exc.filename is not None:  # a file or folder named on the command line
        return _fail(exitcodes.USAGE, f"{exc.filename}: {exc.strerror or exc}")
    if not debug:
        traceback.print_exc()
    return _fail(exitcodes.INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")


def _no_server_hint(exc: Exception) -> str:
    """Nothing listens at the address: how to get a server there."""
    if "refused" not in str(exc).lower():
        return ""
    return " (no server there? `perfprobe serve` starts one, or add --serve to run on an embedded one)"


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
