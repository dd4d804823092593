"""Message compression as both protocols name it: ``gzip`` (RFC 1952) and ``deflate`` (zlib, RFC 1950).

HTTP's ``Content-Encoding`` and gRPC's ``grpc-encoding`` use the same two names for the same
formats, so one pair of functions serves both clients.
"""

from __future__ import annotations

import zlib

from perfprobe.client.errors import BAD_RESPONSE, InferenceServerError

ALGORITHMS = ("gzip", "deflate")
LEVEL = 1  # fastest: the client's own cost stays small beside the server's decompression
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def compression_options(protocol: str, algorithm: str | None) -> dict[str, str]:
    """``make_client``'s keywords for a load that compresses: requests on both protocols; over HTTP
    the answers too (``Accept-Encoding``). A gRPC server compresses answers by its own setting, and
    perfprobe's connections take them in any encoding they offered."""
    if algorithm is None:
        return {}
    if protocol == "http":
        return {"request_compression": algorithm, "response_compression": algorithm}
    return {"request_compression": algorithm}


def check_algorithm(algorithm: str | None) -> None:
    """Refuse a name neither protocol knows (None: no compression)."""
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise ValueError(f"compression must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")


def compress(data: bytes, algorithm: str, level: int = LEVEL) -> bytes:
    packer = zlib.compressobj(level, zlib.DEFLATED, _WBITS[algorithm])
    return packer.compress(data) + packer.flush()


def decompress(data: bytes, encoding: str) -> bytes:
    """``data`` as sent with ``encoding`` (``identity``: as it is); ValueError for an unknown name or bad data."""
    if encoding == "identity":
        return data
    if encoding not in _WBITS:
        raise ValueError(f"an answer compressed with {encoding!r}, which was not offered")
    try:
        return zlib.decompress(data, _WBITS[encoding])
    except zlib.error as exc:
        raise ValueError(f"an answer that does not decompress as {encoding}: {exc}") from None


def decompressed_answer(data: bytes, encoding: str) -> bytes:
    """A server's compressed answer as sent; one that cannot be decompressed is a bad response."""
    try:
        return decompress(data, encoding)
    except ValueError as exc:
        raise InferenceServerError(str(exc), failure=BAD_RESPONSE) from None
