"""Triton's generate extension over HTTP/1.1: ``POST /v2/models/{m}/generate`` (one JSON answer) and
``/generate_stream`` (server-sent events, one per response), the endpoints LLM servers answer on.

A data item becomes one JSON object: each input by name (a one-element tensor as a plain value,
text as text), which the server maps to the model's inputs, and any ``--request-parameter`` as a
field beside them. Each worker keeps its own connection, as for ``infer``. A stream is read as its
events arrive, each timed when its bytes came in; an ``error`` event, an event that is not JSON,
or a stream cut short fails the request with the server's reason and gives no token.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfprobe.client import InferenceClient
from perfprobe.client.base import RequestOptions
from perfprobe.client.model import ModelDescription
from perfprobe.client.tensors import RequestedOutput
from perfprobe.client.tokens import TokenCount, token_counter
from perfprobe.transport import register
from perfprobe.transport.base import (
    Outcome,
    Response,
    Sender,
    SendPlan,
    SendSettings,
    TensorFormats,
    WorkerRuntime,
    failed,
)
from perfprobe.transport.kserve_http import THREADS_UP_TO, KServeHttp

STREAM = "stream"  # the input LLM backends read to stream their tokens or answer once
_ANSWER_FIELDS = frozenset({"model_name", "model_version", "id", "parameters"})  # not generated text


def output_text(answer: dict[str, Any]) -> str:
    """The generated text of one answer or event: ``text_output`` (TensorRT-LLM, vLLM, the stand-in), else
    the first other text field; "" when it carries none (a final response without output)."""
    text = answer.get("text_output")
    if isinstance(text, str):
        return text
    if isinstance(text, list):
        return "".join(str(part) for part in text)
    return next((value for key, value in answer.items() if key not in _ANSWER_FIELDS and isinstance(value, str)), "")


def _field(array: np.ndarray, datatype: str) -> Any:
    """One input as a JSON value: one element plain, more as a flat list; BYTES as text."""
    values = array.reshape(-1).tolist()
    if datatype == "BYTES":
        values = [value.decode("utf-8") if isinstance(value, bytes) else str(value) for value in values]
    return values[0] if len(values) == 1 else values


class _GenerateSender(Sender):
    """One worker's requests to a generate endpoint, on its own kept-alive connection."""

    def __init__(self, connection: Any, stream: bool, count_tokens: TokenCount | None) -> None:
        self._connection = connection
        self._stream = stream
        self._count = count_tokens

    def close(self) -> None:
        self._connection.close()

    def call(self, request: Any) -> Outcome:
        return self._streamed(request) if self._stream else self._answered(request)

    def _answered(self, request: Any) -> Outcome:
        try:
            answer = self._connection.generate(request)
        except Exception as exc:
            return failed(exc, resent=self._connection.last_resent)
        text = output_text(answer)
        tokens = self._count(text) if self._count is not None else None  # one answer: no tokens to count by
        return Outcome(send_ns=self._connection.last_send_ns, resent=self._connection.last_resent, output_tokens=tokens)

    def _streamed(self, request: Any) -> Outcome:
        responses: list[Response] = []
        texts: list[str] = []
        try:
            for answer, event in self._connection.generate_events(request):
                text = output_text(answer)
                if text:  # a response with output: a token's arrival
                    responses.append(Response(event.arrival_ns, event.size))
                    texts.append(text)
        except Exception as exc:
            return failed(exc, resent=self._connection.last_resent)
        tokens = self._count("".join(texts)) if self._count is not None else len(responses)
        return Outcome(
            send_ns=self._connection.last_send_ns,
            responses=responses,
            resent=self._connection.last_resent,
            output_tokens=tokens,
        )


class KServeGenerate(KServeHttp):
    """``generate``: one JSON answer per request (a decoupled model must send exactly one response)."""

    endpoint = "generate"
    title = "HTTP generate"
    modes = ("sync",)
    streaming_modes = ("sync",)  # the server decides: Triton refuses a decoupled model's second response
    json_tensors = False
    streams = False

    def prepare(
        self,
        client: InferenceClient,
        model: ModelDescription,
        inputs: dict[str, np.ndarray],
        outputs: list[RequestedOutput],
        options: RequestOptions | None,
        formats: TensorFormats,
    ) -> Any:
        # request parameters are added as fields afterwards (``with_parameters``); Triton's own request
        # options (an empty final response) have no place here: the endpoint decides how it answers
        fields = {name: _field(array, model.input(name).datatype) for name, array in inputs.items()}
        if STREAM not in fields and any(spec.name == STREAM for spec in model.inputs):
            fields[STREAM] = self.streams  # TensorRT-LLM's and vLLM's switch (and the stand-in's): stream or not
        return client.build_generate_request(model.name, fields, stream=self.streams)  # type: ignore[attr-defined]

    def check_model(self, model: ModelDescription) -> None:
        """A sequence model's steps need a correlation id, and the generate extension carries none (Triton 2.51
        refuses ``sequence_id`` as a field and in ``parameters`` alike)."""
        if model.sequence_batching:
            from perfprobe.errors import UsageError

            raise UsageError(
                f"{model.name} is a sequence model, and --endpoint {self.endpoint} carries no sequence id: "
                "use -i grpc --mode stream, or --endpoint infer"
            )

    def with_parameters(self, client: InferenceClient, request: Any, parameters: dict[str, Any]) -> Any:
        return client.with_fields(request, parameters)  # type: ignore[attr-defined]

    def default_worker_kind(self, mode: str, connection: str, in_flight_per_process: int | None) -> str:
        few = in_flight_per_process is not None and in_flight_per_process <= THREADS_UP_TO
        return "thread" if few else "greenlet"

    def send_plan(self, client: InferenceClient, settings: SendSettings) -> SendPlan:
        self.check_mode(settings.mode)
        self.check_worker_kind(settings.worker_kind)
        blocking = settings.worker_kind == "thread"
        count = token_counter(settings.tokenizer)
        stream = self.streams

        def make_sender(runtime: WorkerRuntime) -> Sender:
            return _GenerateSender(client.dedicated(blocking=blocking), stream, count)  # type: ignore[attr-defined]

        return SendPlan(settings.worker_kind, make_sender)


class KServeGenerateStream(KServeGenerate):
    """``generate_stream``: server-sent events, one per response; every event with output is a token's arrival."""

    endpoint = "generate_stream"
    title = "HTTP generate_stream"
    streams = True


register(KServeGenerate())
register(KServeGenerateStream())
