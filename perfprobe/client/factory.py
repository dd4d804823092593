"""Pick and build the protocol client for a URL, importing only the protocol asked for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perfprobe.client.base import InferenceClient

DEFAULT_URLS = {"http": "localhost:8000", "grpc": "localhost:8001"}
PROTOCOLS = tuple(DEFAULT_URLS)
# clients of protocols added by a transport (``perfprobe.transport.register``): name → (default URL, constructor)
_added: dict[str, tuple[str, Callable[..., InferenceClient]]] = {}


def register_client(protocol: str, default_url: str, constructor: Callable[..., InferenceClient]) -> None:
    """Serve ``protocol`` with ``constructor(url, concurrency=N, **options)`` (built-in names keep theirs)."""
    if protocol not in PROTOCOLS:
        _added[protocol] = (default_url, constructor)


SCHEMES = ("http", "https", "grpc", "grpcs")


def check_url(url: str) -> None:
    """Refuse an address no client could connect to (ValueError saying why): a port outside 1-65535
    would otherwise wrap around to another port, silently."""
    rest = url
    if "://" in url:
        scheme, _, rest = url.partition("://")
        if scheme.lower() not in SCHEMES:
            raise ValueError(f"-u {url!r}: the scheme must be one of {', '.join(SCHEMES)}")
    rest = rest.rstrip("/")
    if "/" in rest:
        raise ValueError(f"-u {url!r}: give HOST:PORT (no path)")
    host, colon, port = rest.rpartition(":") if not rest.endswith("]") else (rest, "", "")
    if not colon:
        host, port = rest, ""
    if not host.strip("[]"):
        raise ValueError(f"-u {url!r}: no host")
    bracketed = host.startswith("[") and host.endswith("]")
    if ("[" in host or "]" in host or ":" in host) and not bracketed:
        raise ValueError(f"-u {url!r}: give HOST:PORT, with an IPv6 address in brackets ([::1]:8000)")
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"-u {url!r}: the port must be a number from 1 to 65535")


def default_url(protocol: str) -> str:
    """Where a protocol's server listens when no ``-u`` is given (perf_analyzer's ports for the built-in ones)."""
    return DEFAULT_URLS[protocol] if protocol in DEFAULT_URLS else _added[protocol][0]


def make_client(
    protocol: str = "http", url: str | None = None, *, concurrency: int = 1, **options: Any
) -> InferenceClient:
    """A client for ``protocol`` at ``url`` (perf_analyzer's default ports when omitted).

    Both clients take the same option names (``headers``, ``timeout_s``, ``request_compression``,
    the ``ssl_*`` files). ``concurrency`` is how many requests may be in flight at once: the size
    of HTTP's connection pool; gRPC multiplexes them on one channel and needs no pool.
    """
    if protocol in _added:
        address, constructor = _added[protocol]
        return constructor(url or address, concurrency=concurrency, **options)
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join((*PROTOCOLS, *_added))}, not {protocol!r}")
    url = url or DEFAULT_URLS[protocol]
    if protocol == "http":
        from perfprobe.client.http_client import HttpClient

        return HttpClient(url, concurrency=concurrency, **options)
    from perfprobe.client.grpc_client import GrpcClient

    return GrpcClient(url, **options)
