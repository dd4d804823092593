"""TLS to the server: the certificate files a run was given, and the contexts made from them.

A server behind TLS whose certificate a private CA signed needs that CA's certificate; one that
asks clients for theirs needs a certificate and its key. Load processes get the files' contents,
not their paths (a cluster's other machines do not have the paths), and write them to private
files of their own for as long as they run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TlsFiles:
    """A TLS connection's files; None: the system's trusted roots, no client certificate."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True)
class TlsPems:
    """The contents of a run's TLS files, for a process on a machine where their paths mean nothing."""

    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None

    @classmethod
    def read(cls, tls: TlsFiles) -> TlsPems:
        def content(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path is not None else None

        return cls(content(tls.ca_file), content(tls.cert_file), content(tls.key_file))


TLS_FOLDER_PREFIX = "perfprobe-tls-"


def written_folders(tag: str) -> list[str]:
    """The folders ``written(pems, tag)`` made on this machine and left (its process was killed)."""
    base = tempfile.gettempdir()
    prefix = f"{TLS_FOLDER_PREFIX}{tag}-"
    return [os.path.join(base, name) for name in os.listdir(base) if name.startswith(prefix)]


def remove_written(tag: str) -> None:
    """Remove what a killed load process tagged ``tag`` wrote (its copy of the key included)."""
    for folder in written_folders(tag):
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def written(pems: TlsPems, tag: str = "") -> Iterator[TlsFiles]:
    """The contents as files only this user can read, removed on the way out.

    ``tag`` names the folder so that whoever started this process can remove it should the
    process be killed before its way out (``remove_written``).
    """
    folder = tempfile.mkdtemp(prefix=f"{TLS_FOLDER_PREFIX}{tag}-" if tag else TLS_FOLDER_PREFIX)  # mode 0700
    try:

        def write(name: str, content: bytes | None) -> str | None:
            if content is None:
                return None
            path = os.path.join(folder, name)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                handle.write(content)
            return path

        yield TlsFiles(write("ca.pem", pems.ca), write("cert.pem", pems.cert), write("key.pem", pems.key))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
