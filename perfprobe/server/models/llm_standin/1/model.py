"""perfprobe built-in model ``llm_standin``: the timing of an LLM server, with no model inside.

Requests are handed to one scheduler thread (the model is decoupled, so ``execute`` returns at
once and Triton keeps sending new requests). The scheduler admits waiting requests between
decode steps, prefilling each (a cost growing with its input's words) and sending its first
token; then every decode step sends each active request its next token, and lasts longer the
more requests share it. A request ends after ``max_tokens`` tokens; the last carries the final
flag. With ``stream`` false the tokens go out as one response at the end (Triton's non-streaming
``generate`` endpoint takes exactly one). The parameters are in config.pbtxt; ``timing_log`` (a file path)
makes it write each request's own timing (arrival, first and last token sent, tokens), for a
benchmark to check a client's figures against the server's.
"""

import json
import queue
import threading
import time

import numpy as np
import triton_python_backend_utils as pb_utils

WORDS = (
    "the of and to in is was for on that with as by at from his her an which are be this were or had "
    "not but have their it has one they been all new more when who will would there can time first"
).split()


class _Generation:
    """One request being answered: where its tokens go and how many it still gets."""

    def __init__(self, sender, words: int, max_tokens: int, stream: bool, log=None) -> None:
        self.sender = sender
        self.words = words
        self.remaining = max_tokens
        self.stream = stream
        self.produced = []
        self.log = log  # the timing log's file, or None
        self.arrived = time.perf_counter()
        self.sent = []  # when each token went out, for the timing log

    def next_token(self) -> None:
        """Give the request its next token; the last one carries the final flag."""
        self.produced.append(" " + WORDS[len(self.produced) % len(WORDS)])
        self.remaining -= 1
        last = self.remaining <= 0
        if self.stream:
            self._send(self.produced[-1], last)
        elif last:
            self._send("".join(self.produced), True)

    def _send(self, text: str, last: bool) -> None:
        out = pb_utils.Tensor("text_output", np.array([text.encode()], dtype=np.object_))
        flags = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if last else 0
        self.sender.send(pb_utils.InferenceResponse(output_tensors=[out]), flags=flags)
        if self.log is not None:
            self.sent.append(time.perf_counter())
            if last:  # the server's own view of the request: arrival, first and last token, tokens
                self.log.write(f"{self.arrived:.6f} {self.sent[0]:.6f} {self.sent[-1]:.6f} {len(self.produced)}\n")
                self.log.flush()


class TritonPythonModel:
    def initialize(self, args):
        parameters = json.loads(args["model_config"]).get("parameters", {})

        def number(key: str) -> float:
            return float(parameters[key]["string_value"])

        self.prefill_base_s = number("prefill_base_us") / 1e6
        self.prefill_per_token_s = number("prefill_us_per_token") / 1e6
        self.step_s = number("decode_step_us") / 1e6
        self.step_per_sequence_s = number("decode_us_per_sequence") / 1e6
        self.max_active = int(number("max_active"))
        self.default_max_tokens = int(number("default_max_tokens"))
        log_path = parameters.get("timing_log", {}).get("string_value", "")
        self.log = open(log_path, "a") if log_path else None  # noqa: SIM115 (open for the model's life)
        self.waiting = queue.SimpleQueue()
        self.running = True
        self.scheduler = threading.Thread(target=self._schedule, daemon=True)
        self.scheduler.start()

    def execute(self, requests):
        for request in requests:
            text = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy().reshape(-1)[0]
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
            limit = pb_utils.get_input_tensor_by_name(request, "max_tokens")
            max_tokens = int(limit.as_numpy().reshape(-1)[0]) if limit is not None else self.default_max_tokens
            stream = pb_utils.get_input_tensor_by_name(request, "stream")
            streaming = bool(stream.as_numpy().reshape(-1)[0]) if stream is not None else True
            sender = request.get_response_sender()
            if max_tokens < 1:
                error = pb_utils.TritonError(f"max_tokens must be at least 1, not {max_tokens}")
                sender.send(pb_utils.InferenceResponse(error=error), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                continue
            self.waiting.put(_Generation(sender, len(text.split()), max_tokens, streaming, self.log))
        return None

    def _schedule(self) -> None:
        """Decode steps on a clock: each ends a step's length after the last (or after the prefills that
        held it up), so the time spent sending tokens is inside the step, as on a server."""
        active = []
        step_ends = time.perf_counter()
        while self.running:
            if not active:
                try:
                    active.append(self._prefill(self.waiting.get(timeout=0.1)))
                except queue.Empty:
                    continue
                step_ends = time.perf_counter()
            while len(active) < self.max_active:  # prefills between decode steps hold the steps up
                try:
                    active.append(self._prefill(self.waiting.get_nowait()))
                except queue.Empty:
                    break
                step_ends = time.perf_counter()
            active = [generation for generation in active if generation.remaining > 0]
            if not active:
                continue
            step_ends = max(step_ends + self.step_s + self.step_per_sequence_s * (len(active) - 1), time.perf_counter())
            _sleep_until(step_ends)
            for generation in active:
                generation.next_token()
            active = [generation for generation in active if generation.remaining > 0]

    def _prefill(self, generation: _Generation) -> _Generation:
        """The prompt's cost, then its first token."""
        _sleep_until(time.perf_counter() + self.prefill_base_s + self.prefill_per_token_s * generation.words)
        generation.next_token()
        return generation

    def finalize(self):
        self.running = False
        self.scheduler.join(timeout=5)
        if self.log is not None:
            self.log.close()


def _sleep_until(deadline: float) -> None:
    while (left := deadline - time.perf_counter()) > 0:
        time.sleep(left)
