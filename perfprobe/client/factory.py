"""Pick and build the protocol client for a URL, importing only the protocol asked for."""

from __future__ import annotations

from typing import Any

from perfprobe.client.base import InferenceClient

DEFAULT_URLS = {"http": "localhost:8000", "grpc": "localhost:8001"}
PROTOCOLS = tuple(DEFAULT_URLS)


def make_client(
    protocol: str = "http", url: str | None = None, *, concurrency: int = 1, **options: Any
) -> InferenceClient:
    """A client for ``protocol`` at ``url`` (perf_analyzer's default ports when omitted).

    Both clients take the same option names (``headers``, ``timeout_s``, ``request_compression``,
    the ``ssl_*`` files). ``concurrency`` is how many requests may be in flight at once: the size
    of HTTP's connection pool; gRPC multiplexes them on one channel and needs no pool.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    url = url or DEFAULT_URLS[protocol]
    if protocol == "http":
        from perfprobe.client.http_client import HttpClient

        return HttpClient(url, concurrency=concurrency, **options)
    from perfprobe.client.grpc_client import GrpcClient

    return GrpcClient(url, **options)
