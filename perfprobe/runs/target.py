"""The server a run talks to: the one at the given URL, or the embedded Triton started for the run.

This is the one place that starts an embedded server for a command or a library run, and the
one place that picks the metrics URLs to try when none was given (the embedded server's own, or
Triton's default ports on the inference URL's host).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from perfprobe.client.factory import default_url
from perfprobe.measure.metrics import default_metrics_urls


@dataclass(frozen=True)
class Target:
    protocol: str
    url: str
    metrics_urls: tuple[str, ...]  # where the metrics may be, in the order to try them
    embedded: bool


@contextlib.contextmanager
def server_target(
    protocol: str,
    url: str | None = None,
    *,
    serve: bool = False,
    repositories: Sequence[str] = (),
    builtin_models: Sequence[str] | None = None,
    metrics_url: str | None = None,
) -> Iterator[Target]:
    """Where to send: ``url`` as given, or (``serve``) an embedded server on free ports, stopped after."""
    if not serve:
        address = url or default_url(protocol)
        candidates = (metrics_url,) if metrics_url else tuple(default_metrics_urls(address, protocol))
        yield Target(protocol, address, candidates, False)
        return
    from perfprobe.server import EmbeddedServer

    server = EmbeddedServer(
        builtin_models=list(builtin_models) if builtin_models is not None else None,
        model_repositories=list(repositories),
        pick_free_ports=True,
    ).start()
    try:
        yield Target(protocol, server.url(protocol), (metrics_url or server.metrics_url,), True)
    finally:
        server.stop()
