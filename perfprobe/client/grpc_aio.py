"""gRPC on asyncio (``grpc.aio``): unary calls and bidirectional streams driven from one event loop.

grpcio's synchronous stubs pay for a thread hand-off on every call (and a reader thread per
stream); on one event loop, many calls and streams share one thread and the channel's own
poller, which is what a load generator wants. Requests are the same pre-serialised bytes as
the synchronous client's; responses of unary calls stay bytes until someone decodes them.
A connection belongs to the event loop it was made on.
"""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio

from perfprobe.client._proto import grpc_service_pb2 as pb
from perfprobe.client.errors import UNREACHABLE, InferenceServerError

_SERVICE = "/inference.GRPCInferenceService/"


def aio_error(exc: grpc.aio.AioRpcError) -> InferenceServerError:
    """The ``InferenceServerError`` for a failed call, with its status code."""
    code = exc.code()
    return InferenceServerError(exc.details() or str(code), grpc_code=code.name if code else None, debug=exc)


class AioStream:
    """One ``ModelStreamInfer`` call: write requests, read responses, in any order."""

    def __init__(self, call: Any) -> None:
        self._call = call

    async def write(self, payload: bytes) -> None:
        try:
            await self._call.write(payload)
        except grpc.aio.AioRpcError as exc:
            raise aio_error(exc) from None
        except grpc.aio.UsageError as exc:  # the call already ended: writing is no longer possible
            raise InferenceServerError(f"the stream has ended ({exc})", failure=UNREACHABLE) from None

    async def read(self) -> pb.ModelStreamInferResponse | None:
        """The next response, or None when the server ended the stream."""
        try:
            message = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            raise aio_error(exc) from None
        return None if message is grpc.aio.EOF else message

    def cancel(self) -> None:
        self._call.cancel()


class AioGrpcConnection:
    """A ``grpc.aio`` channel with the synchronous client's settings (options, TLS, metadata, deadline)."""

    def __init__(
        self,
        url: str,
        options: list[tuple[str, Any]],
        credentials: grpc.ChannelCredentials | None,
        metadata: list[tuple[str, str]],
        compression: grpc.Compression,
        timeout_s: float | None,
    ) -> None:
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(url, options=options)
        else:
            self._channel = grpc.aio.secure_channel(url, credentials, options=options)
        self._metadata = tuple(metadata)
        self._compression = compression
        self._timeout_s = timeout_s
        self._infer = self._channel.unary_unary(
            _SERVICE + "ModelInfer", request_serializer=None, response_deserializer=None
        )
        self._stream = self._channel.stream_stream(
            _SERVICE + "ModelStreamInfer",
            request_serializer=None,
            response_deserializer=pb.ModelStreamInferResponse.FromString,
        )

    async def infer(self, payload: bytes) -> bytes:
        """Send a serialised ``ModelInferRequest``; the serialised response, or ``InferenceServerError``."""
        try:
            return await self._infer(
                payload, metadata=self._metadata, timeout=self._timeout_s, compression=self._compression
            )
        except grpc.aio.AioRpcError as exc:
            raise aio_error(exc) from None

    def open_stream(self) -> AioStream:
        """A new bidirectional stream (no deadline: each request is timed by its caller)."""
        return AioStream(self._stream(metadata=self._metadata, compression=self._compression))

    async def close(self) -> None:
        await self._channel.close()
