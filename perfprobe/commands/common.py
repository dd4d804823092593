"""Options and helpers shared by the subcommands that talk to a server."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perfprobe.client import InferenceClient


CONNECTION = ("url", "protocol", "header", "ssl_ca_file", "ssl_cert_file", "ssl_key_file", "serve")
SHARED_MEMORY = ("shared_memory", "output_shared_memory_size", "cuda_device")


def add_declared(
    parser: argparse.ArgumentParser, names: Iterable[str], defaults: dict[str, object] | None = None
) -> None:
    """Add options as ``SweepOptions`` declares them: flags, help with the default, choices, groups.

    ``defaults`` replaces a declared default for this command (``infer``'s output region size).
    """
    from perfprobe.runs.options import GROUPS, SweepOptions, default

    declared = SweepOptions.declared()
    groups: dict[str | None, Any] = {}
    exclusive: dict[str, Any] = {}
    for name in names:
        how = declared[name]
        value = (defaults or {}).get(name, default(name))
        if how.group not in groups:
            groups[how.group] = parser if how.group is None else parser.add_argument_group(GROUPS[how.group])
        home = groups[how.group]
        if how.exclusive:
            if how.exclusive not in exclusive:
                exclusive[how.exclusive] = home.add_mutually_exclusive_group()
            home = exclusive[how.exclusive]
        flags = [*how.flags, "--" + name.replace("_", "-")]
        kwargs: dict[str, Any] = {"help": _help(how.help, how.shown_default, value), "dest": name}
        if isinstance(value, bool):
            kwargs["action"] = "store_true"
        else:
            kwargs.update(default=value, metavar=how.metavar)
            if how.repeat:
                kwargs["action"] = "append"
            elif how.kind is not str:
                kwargs["type"] = how.kind
            if how.choices is not None:
                kwargs["choices"] = how.allowed()
        home.add_argument(*flags, **kwargs)


def _help(text: str, shown: str | None, default: object) -> str:
    """An option's help, ending with its default (argparse's %% escapes kept)."""
    if shown is not None:
        return f"{text} (default: {shown})"
    if default is None or default is False or default in ([], ""):
        return text
    return f"{text} (default: {default})"


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Where the server is and how to reach it: every command that talks to one takes these."""
    add_declared(parser, CONNECTION)


@contextlib.contextmanager
def connect(
    args: argparse.Namespace, models: list[str] | None = None, concurrency: int = 1
) -> Iterator[InferenceClient]:
    """A client for the command's server; with ``--serve``, an embedded server on free ports."""
    from perfprobe.client import make_client
    from perfprobe.client.tls import client_options
    from perfprobe.runs.options import check_address, parse_headers, tls_files
    from perfprobe.runs.target import server_target

    check_address(args.url)
    tls = client_options(tls_files(args.ssl_ca_file, args.ssl_cert_file, args.ssl_key_file))
    with (
        server_target(args.protocol, args.url, serve=getattr(args, "serve", False), builtin_models=models) as target,
        make_client(
            target.protocol, target.url, concurrency=concurrency, headers=parse_headers(args.header), **tls
        ) as client,
    ):
        yield client


def add_shared_memory_options(parser: argparse.ArgumentParser, output_size_default: int | None) -> None:
    """How tensors travel (``--shared-memory`` and its region size and GPU), as sweep, compare and infer take it."""
    add_declared(parser, SHARED_MEMORY, {"output_shared_memory_size": output_size_default})
