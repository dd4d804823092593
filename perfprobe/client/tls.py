"""TLS to the server: the certificate files a run was given, and the contexts made from them.

A server behind TLS whose certificate a private CA signed needs that CA's certificate; one that
asks clients for theirs needs a certificate and its key. The files are plain paths, so they
travel to load processes with the rest of a load's settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TlsFiles:
    """A TLS connection's files; None: the system's trusted roots, no client certificate."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


def tls_url(url: str) -> bool:
    """Whether a URL's scheme asks for TLS (``grpcs://``, ``https://``)."""
    return url.partition("://")[0] in ("grpcs", "https") if "://" in url else False


def client_options(tls: TlsFiles | None) -> dict[str, Any]:
    """``make_client``'s TLS keywords: none where the run has no TLS files (the URL's scheme still decides)."""
    if tls is None:
        return {}
    return {"ssl": True, "ssl_ca_file": tls.ca_file, "ssl_cert_file": tls.cert_file, "ssl_key_file": tls.key_file}


def tls_context(tls: TlsFiles, alpn: list[str], cooperative: bool) -> Any:
    """A client context that checks the server's certificate and name, offering ``alpn`` protocols.

    ``cooperative``: gevent's context, whose sockets let other greenlets run while one waits.
    """
    if cooperative:
        from gevent import ssl
    else:
        import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.ca_file is not None:
        context.load_verify_locations(cafile=tls.ca_file)
    else:
        context.load_default_certs()
    if tls.cert_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    context.set_alpn_protocols(alpn)
    return context
