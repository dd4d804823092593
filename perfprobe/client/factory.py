"""Pick and build the protocol client for a URL, importing only the protocol asked for."""

from __future__ import annotations

from typing import Any

from perfprobe.client.base import InferenceClient

DEFAULT_URLS = {"http": "localhost:8000", "grpc": "localhost:8001"}
PROTOCOLS = tuple(DEFAULT_URLS)


def make_client(protocol: str = "http", url: str | None = None, **options: Any) -> InferenceClient:
    """A client for ``protocol`` at ``url`` (perf_analyzer's default ports when omitted)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    url = url or DEFAULT_URLS[protocol]
    if protocol == "http":
        from perfprobe.client.http_client import HttpClient

        return HttpClient(url, **options)
    from perfprobe.client.grpc_client import GrpcClient

    return GrpcClient(url, **options)


def timeout_options(protocol: str, timeout_s: float) -> dict[str, float]:
    """Client options that bound every call, control calls included, by ``timeout_s``.

    The two clients name their timeouts differently; commands should not need to know how.
    """
    if protocol == "http":
        return {"connection_timeout": timeout_s, "network_timeout": timeout_s}
    return {"timeout_s": timeout_s}
