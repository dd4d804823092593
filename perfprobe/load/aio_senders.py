"""Coroutine senders for the asyncio runtime: gRPC unary calls and streams on ``grpc.aio``.

The same contract as ``perfprobe.load.senders``: every call returns an ``Outcome``, every
completion belongs to its own request (a stream tags each request with an id; answers for
other ids are dropped and counted), a timed-out request counts once as ``TIMEOUT`` and its
stream is replaced; at a stop the asyncio runtime cancels the worker, which ends a wait that
no answer would end. Each sender opens its connection on the event loop that runs it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from perfprobe.client import InferenceClient, InferenceServerError
from perfprobe.client.errors import TIMEOUT, UNREACHABLE
from perfprobe.client.grpc_client import with_request_id
from perfprobe.load.senders import FINAL, OTHER_REQUEST, STOPPED, Outcome, failed, judge_stream_response

_now = time.perf_counter_ns


class CoroutineSender:
    """What a coroutine worker awaits: ``call`` per request, ``aclose`` at the end."""

    def __init__(self, client: InferenceClient) -> None:
        self._connection = client.aio_connection()  # made on the running loop: it belongs there
        self._aborted = False

    async def call(self, request: Any) -> Outcome:
        raise NotImplementedError

    def abort(self) -> None:
        """From the controller's thread, while stopping: no new request; the runtime cancels the one awaited."""
        self._aborted = True

    async def aclose(self) -> None:
        await self._connection.close()


class AioUnarySender(CoroutineSender):
    """One ``ModelInfer`` call at a time per worker; its deadline is the client's request timeout."""

    def __init__(self, client: InferenceClient, decode: bool = False) -> None:
        super().__init__(client)
        self._decode = client.decode_raw if decode else None

    async def call(self, request: Any) -> Outcome:
        if self._aborted:
            return Outcome(error=STOPPED)
        try:
            raw = await self._connection.infer(request.payload)
        except InferenceServerError as exc:
            return failed(exc)
        if self._decode is None:
            return Outcome()
        started = _now()
        try:
            self._decode(raw)
        except Exception as exc:
            return failed(exc)
        return Outcome(recv_ns=_now() - started)


class AioStreamSender(CoroutineSender):
    """One ``ModelStreamInfer`` stream per worker, one request in flight on it at a time.

    A request is complete at its final response (decoupled models are asked for an empty
    final one, so zero responses still end). Responses carrying outputs are timed, for time
    to first response and inter-response gaps.
    """

    _ids = itertools.count()

    def __init__(self, client: InferenceClient, timeout_s: float) -> None:
        super().__init__(client)
        self._timeout_s = timeout_s
        self._prefix = f"pa{next(self._ids)}-"
        self._sequence = itertools.count()
        self._stream: Any = None
        self._dropped = 0

    def _replace(self) -> None:
        """Give up on the stream: whatever it still carries is never read."""
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None

    async def call(self, request: Any) -> Outcome:
        if self._aborted:
            return Outcome(error=STOPPED)
        if self._stream is None:
            self._stream = self._connection.open_stream()
        request_id = f"{self._prefix}{next(self._sequence)}"
        times: list[int] = []
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._stream.write(with_request_id(request, request_id).payload)
                return await self._responses(request_id, times)
        except TimeoutError:
            self._replace()
            return self._outcome(TIMEOUT, times)
        except asyncio.CancelledError:  # the runtime cancelled this worker: the run is stopping
            self._stream = None
            return self._outcome(STOPPED, times)
        except InferenceServerError as exc:  # the stream itself failed: a new one for the next request
            self._replace()
            return failed(exc, response_times=times, dropped=self._take_dropped())

    async def _responses(self, request_id: str, times: list[int]) -> Outcome:
        while True:
            message = await self._stream.read()
            if message is None:
                self._stream = None
                error = InferenceServerError("the server ended the stream", failure=UNREACHABLE)
                return failed(error, response_times=times, dropped=self._take_dropped())
            verdict = judge_stream_response(message, request_id, times)
            if verdict is OTHER_REQUEST:
                self._dropped += 1  # an answer to a request given up on earlier
            elif isinstance(verdict, InferenceServerError):
                return failed(verdict, response_times=times, dropped=self._take_dropped())
            elif verdict is FINAL:
                return Outcome(response_times=times, dropped=self._take_dropped())

    def _take_dropped(self) -> int:
        dropped, self._dropped = self._dropped, 0
        return dropped

    def _outcome(self, error: str, times: list[int]) -> Outcome:
        return Outcome(error=error, response_times=times, dropped=self._take_dropped())

    async def aclose(self) -> None:
        self._replace()
        await super().aclose()
