"""Generative models (issue 28) against the real embedded Triton and its built-in ``llm_standin``.

The stand-in's timing is set in its config.pbtxt: a prefill of 2 ms + 20 µs per prompt word, then
one token per decode step of 8 ms (+ 0.5 ms per other request sharing the step). Its figures can
only be slower than that on a loaded machine, never faster, so every timing assertion here is a
floor that is exact and a ceiling that leaves a busy 2-core machine its room.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import perfprobe_command, run_perfprobe
from word_tokenizer import letter_tokenizer, standin_words, word_tokenizer

import perfprobe
from perfprobe import exitcodes

PREFILL_BASE_US, PREFILL_PER_WORD_US, STEP_US, PER_SEQUENCE_US = 2000, 20, 8000, 500
SLACK_US = 40_000  # what a busy machine may add to one response's arrival (a ceiling, not a measured rate)


def _levels(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())["levels"]


def _sweep(server, out: Path, *extra: str, protocol: str = "http") -> list[dict]:
    result = run_perfprobe(
        "sweep", "-m", "llm_standin", "-i", protocol, "-u", server.url(protocol), "--measurement-interval", "1000",
        "--stability-windows", "2", "--max-trials", "4", "--no-report", "--output-dir", str(out), *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return _levels(out)


def test_tokens_and_timing_follow_the_stand_in_s_configured_delays(server, tmp_path: Path) -> None:
    prompt_words, max_tokens = 100, 8
    levels = _sweep(
        server, tmp_path, "--endpoint", "generate_stream", "--concurrency", "1:4:x4",
        "--prompt-tokens", str(prompt_words), "--output-tokens", str(max_tokens),
    )  # fmt: skip
    for level in levels:
        row = level["row"]
        windows = [w for w in level["windows"] if w["index"] in level["reported_windows"]]
        # every request streamed exactly max_tokens responses: one token each
        assert all(
            w["output_tokens"] == max_tokens * w["completed"] == max_tokens * w["token_requests"] for w in windows
        )
        assert row["Output Tokens per Request"] == max_tokens
        seconds = sum(w["duration_ns"] for w in windows) / 1e9
        assert row["Output Tokens/Second"] == pytest.approx(
            sum(w["output_tokens"] for w in windows) / seconds, rel=1e-3
        )
        prefill = PREFILL_BASE_US + PREFILL_PER_WORD_US * prompt_words
        step = STEP_US + PER_SEQUENCE_US * (level["level"] - 1)  # every request shares each step at c=level
        assert prefill <= row["Time To First Token p50"] <= prefill + SLACK_US + step * (level["level"] - 1), row
        assert 0.97 * STEP_US <= row["Inter Token Latency p50"] <= step + SLACK_US / 4, row
        assert row["Server Queue"] != "" and row["Server Compute Infer"] != ""  # Triton's breakdown beside TTFT
    one, four = (level["row"] for level in levels)
    assert four["Inter Token Latency p50"] > one["Inter Token Latency p50"]  # decode steps shared by more requests


def test_goodput_is_zero_under_an_impossible_limit_and_the_throughput_under_a_loose_one(server, tmp_path: Path) -> None:
    common = ("--endpoint", "generate_stream", "--concurrency", "2", "--output-tokens", "4")
    strict = _sweep(server, tmp_path / "strict", *common, "--goodput", "ttft<1us")[0]["row"]
    loose = _sweep(server, tmp_path / "loose", *common, "--goodput", "ttft<60s,itl<60s,latency<60s")[0]["row"]
    assert strict["Request Goodput"] == 0 and strict["Inferences/Second"] > 0
    assert loose["Request Goodput"] == loose["Inferences/Second"] > 0
    without = _sweep(server, tmp_path / "none", *common)[0]["row"]
    assert without["Request Goodput"] == ""  # not asked for: absent, not 0


def test_a_grpc_stream_gives_the_same_token_figures(server, tmp_path: Path) -> None:
    row = _sweep(server, tmp_path, "--mode", "stream", "--concurrency", "1", "--output-tokens", "6", protocol="grpc")[
        0
    ]["row"]
    assert row["Output Tokens per Request"] == 6
    assert STEP_US * 0.97 <= row["Inter Token Latency p50"] <= STEP_US + SLACK_US / 4
    assert row["Time To First Token p50"] >= PREFILL_BASE_US


def test_a_tokenizer_counts_the_generated_text_and_sizes_the_prompts(server, tmp_path: Path) -> None:
    tokenizer = word_tokenizer(tmp_path / "tokenizer") / "tokenizer.json"
    # non-streaming generate: one answer, whose text the tokenizer counts
    row = _sweep(
        server, tmp_path / "run", "--endpoint", "generate", "--concurrency", "1", "--output-tokens", "5",
        "--tokenizer", str(tokenizer),
    )[0]["row"]  # fmt: skip
    assert row["Output Tokens per Request"] == 5
    assert row["Time To First Token p50"] == "" and row["Inter Token Latency p50"] == ""  # nothing streamed
    from perfprobe.client import make_client
    from perfprobe.client.tokens import token_counter
    from perfprobe.data.prompts import Lengths, PromptPlan, prompt_items

    with make_client("http", server.http_url) as control:
        model = control.describe_model("llm_standin")
    plan = PromptPlan(Lengths(37, 9), Lengths(3), count=20, tokenizer=str(tokenizer))
    count = token_counter(str(tokenizer))
    assert count is not None
    items = prompt_items(model, plan)
    lengths = [count(item["text_input"].reshape(-1)[0].decode()) for item in items]
    assert len(set(lengths)) > 1 and all(length >= 1 for length in lengths)
    again = [count(item["text_input"].reshape(-1)[0].decode()) for item in prompt_items(model, plan)]
    assert again == lengths  # a fixed seed: the same prompts every run


def test_a_request_the_server_refuses_is_counted_with_its_reason(server, tmp_path: Path) -> None:
    data = tmp_path / "zero.json"
    data.write_text(json.dumps({"data": [{"text_input": ["hello there"], "max_tokens": [0]}]}))
    with pytest.raises(perfprobe.AllRequestsFailed) as failed:
        perfprobe.sweep(
            "llm_standin", url=server.http_url, endpoint="generate_stream", input_data=str(data),
            concurrency="1", measurement_interval=300, max_trials=2, no_report=True, output_dir=str(tmp_path / "out"),
        )  # fmt: skip
    assert "HTTP 400" in str(failed.value) and "max_tokens must be at least 1" in str(failed.value)
    row = _levels(tmp_path / "out")[0]["row"]
    assert row["Output Tokens/Second"] == "" and row["Completed"] == 0


def test_generate_on_a_streaming_model_is_an_error_event_not_a_success(server, tmp_path: Path) -> None:
    """Triton answers 200 with ``{"error": ...}`` when a model streams more than one response to ``generate``."""
    data = tmp_path / "streams.json"
    data.write_text(json.dumps({"data": [{"text_input": ["hi"], "max_tokens": [3], "stream": [True]}]}))
    with pytest.raises(perfprobe.AllRequestsFailed) as failed:
        perfprobe.sweep(
            "llm_standin", url=server.http_url, endpoint="generate", input_data=str(data), concurrency="1",
            measurement_interval=300, max_trials=2, no_report=True, output_dir=str(tmp_path / "out"),
        )  # fmt: skip
    assert "ERROR_EVENT" in str(failed.value) and "exactly 1 response" in str(failed.value)


def test_generate_endpoints_over_grpc_are_refused_in_one_line(server) -> None:
    result = run_perfprobe("sweep", "-i", "grpc", "-u", server.grpc_url, "-m", "llm_standin", "--endpoint", "generate")
    assert result.returncode == exitcodes.USAGE
    assert result.stderr.strip() == "perfprobe: error: --endpoint generate: grpc offers infer; it needs -i http"


# ---- what a real server cannot be made to do: a fake SSE server (named as such) ----------------------------


class FakeSseServer:
    """Answers every request with the bytes a test gives: good events, then an error, garbage, or a cut."""

    def __init__(self, body: bytes, close_early: bool = False) -> None:
        self.body, self.close_early = body, close_early
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                chunk = b"%x\r\n%s\r\n" % (len(self.body), self.body)
                conn.sendall(head + (chunk[:-9] if self.close_early else chunk + b"0\r\n\r\n"))

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def fake_sse() -> Iterator[type[FakeSseServer]]:
    made: list[FakeSseServer] = []

    def make(body: bytes, close_early: bool = False) -> FakeSseServer:
        made.append(FakeSseServer(body, close_early))
        return made[-1]

    yield make  # type: ignore[misc]
    for fake in made:
        fake.close()


@pytest.mark.parametrize(
    ("body", "close_early", "code", "reason"),
    [
        (b'data: {"text_output":" a"}\n\ndata: {"error":"the model fell over"}\n\n', False, "ERROR_EVENT", "fell over"),
        (b'data: {"text_output":" a"}\n\ndata: not json\n\n', False, "BAD_EVENT", "not a JSON object: not json"),
        (b'data: {"text_output":" a"}\n\ndata: {"text_output":" b"}\n\n', True, "TRUNCATED", ""),
        (b'data: {"text_output":" a"}\n\ndata: {"text_out', False, "BAD_EVENT", "ended inside an event"),
    ],
)
def test_a_broken_stream_fails_its_request_and_gives_no_token(
    fake_sse, body: bytes, close_early: bool, code: str, reason: str
) -> None:
    from perfprobe.client import make_client
    from perfprobe.transport import transport_for
    from perfprobe.transport.base import SendSettings
    from perfprobe.transport.kserve_generate import KServeGenerateStream

    fake = fake_sse(body, close_early)
    transport = transport_for("http", "generate_stream")
    assert isinstance(transport, KServeGenerateStream)
    with make_client("http", f"127.0.0.1:{fake.port}", timeout_s=5) as client:
        request = client.build_generate_request("fake", {"text_input": "hi"}, stream=True)  # type: ignore[attr-defined]
        plan = transport.send_plan(client, SendSettings("sync", "thread", 5.0))
        sender = plan.make_sender(None)  # type: ignore[arg-type]
        try:
            outcome = sender.call(request)
        finally:
            sender.close()
    assert outcome.error == code, outcome
    assert reason in outcome.reason
    assert outcome.output_tokens is None and not outcome.responses  # a failed request carries no token


def test_server_sent_events_are_split_wherever_the_bytes_break() -> None:
    from perfprobe.client.sse import events

    stream = b'data: {"a":1}\n\n: a comment\n\nevent: error\ndata: {"error":"e"}\r\n\r\ndata: x\ndata: y\n\n'
    for cut in range(1, len(stream)):
        found = [(event.name, event.data) for event in events([stream[:cut], stream[cut:]])]
        assert found == [("", '{"a":1}'), ("error", '{"error":"e"}'), ("", "x\ny")], cut


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ttft<200ms,itl<20ms,latency<2s", ""),
        ("ttft>200ms", "is not a limit like ttft<200ms"),
        ("tpot<5ms", "is not a limit like ttft<200ms"),
        ("ttft<5ms,ttft<6ms", "ttft is limited twice"),
        ("ttft<0", "must be more than 0"),
        ("latency<fast", "is not a duration"),
        ("", "give at least one limit"),
    ],
)
def test_goodput_limits_are_read_or_refused_in_one_line(text: str, says: str) -> None:
    from perfprobe.errors import UsageError
    from perfprobe.measure.goodput import parse_goodput

    if not says:
        limits = parse_goodput(text)
        assert (limits.ttft_ns, limits.itl_ns, limits.latency_ns) == (200_000_000, 20_000_000, 2_000_000_000)
        assert limits.met(1_000_000_000, 100_000_000, 10_000_000)
        assert not limits.met(1_000_000_000, 300_000_000, 10_000_000)
        assert limits.met(100_000_000, None, None)  # an answer without a stream: its latency is its first token
        return
    with pytest.raises(UsageError, match=says):
        parse_goodput(text)


@pytest.mark.parametrize(("sig", "workers"), [(signal.SIGINT, "thread"), (signal.SIGTERM, "greenlet")])
def test_a_stream_interrupted_says_one_line_and_keeps_what_it_measured(
    server, tmp_path: Path, sig: signal.Signals, workers: str
) -> None:
    process = subprocess.Popen(
        perfprobe_command(
            "sweep", "-u", server.http_url, "-m", "llm_standin", "--endpoint", "generate_stream", "--concurrency",
            "1:4", "--workers", workers, "--measurement-interval", "500", "--stability-windows", "2",
            "--no-report", "--output-dir", str(tmp_path),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for_rows(tmp_path / "results.csv", 1, process)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == exitcodes.INTERRUPTED, stderr
    assert _said(stderr) == ["interrupted: results measured so far are written"], stderr
    assert _levels(tmp_path)[0]["row"]["Output Tokens per Request"] > 0


def test_a_server_killed_mid_stream_stops_the_run_and_keeps_the_finished_level(tmp_path: Path) -> None:
    from perfprobe.server import EmbeddedServer

    with EmbeddedServer(builtin_models=["llm_standin"], pick_free_ports=True) as doomed:
        process = subprocess.Popen(
            perfprobe_command(
                "sweep", "-u", doomed.http_url, "-m", "llm_standin", "--endpoint", "generate_stream",
                "--concurrency", "1:4", "--measurement-interval", "500", "--stability-windows", "2",
                "--no-report", "--output-dir", str(tmp_path),
            ),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        _wait_for_rows(tmp_path / "results.csv", 1, process)
        doomed.kill()
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == exitcodes.SERVER_UNREACHABLE, stderr
    said = _said(stderr)
    assert len(said) == 1 and said[0].startswith("perfprobe: error: the server stopped answering"), stderr
    assert _levels(tmp_path)[0]["level"] == 1


def _said(stderr: str) -> list[str]:
    """stderr's lines past the start-up notes (what the prompts are, how tokens are counted)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("note: ")]


def _wait_for_rows(csv_path: Path, rows: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if csv_path.exists() and len(csv_path.read_text().splitlines()) > rows:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {rows} level(s) written in time (exit {process.poll()})")


def test_a_mooncake_trace_gives_each_request_its_own_prompt_and_output_length(server, tmp_path: Path) -> None:
    trace = tmp_path / "mooncake.jsonl"
    lines = [
        {"timestamp": 0, "input_length": 40, "output_length": 5, "hash_ids": [1, 2]},
        {"timestamp": 40, "input_length": 300, "output_length": 9, "hash_ids": [3]},
        {"timestamp": 80, "input_length": 10, "output_length": 3},
        {"timestamp": 120, "input_length": 20},  # the run's --output-tokens
    ]
    trace.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = run_perfprobe(
        "sweep", "-u", server.http_url, "-m", "llm_standin", "--endpoint", "generate_stream", "--request-trace",
        str(trace), "--output-tokens", "7", "--no-report", "--output-dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    level = _levels(tmp_path / "out")[0]
    assert sum(w["completed"] for w in level["windows"]) == 4
    assert sum(w["output_tokens"] for w in level["windows"]) == 5 + 9 + 3 + 7


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ({"timestamp": 0, "timestamp_ms": 0}, "give timestamp_ms or timestamp"),
        ({"timestamp": 0, "input_length": 0}, "input_length must be a whole number of tokens"),
        ({"timestamp": 0, "output_length": 4}, "output_length needs input_length"),
        ({"timestamp": 0, "input_length": 4, "inputs": {"text_input": ["x"]}}, "give inputs or input_length"),
    ],
)
def test_a_trace_s_lengths_are_checked_in_one_line(tmp_path: Path, line: dict, says: str) -> None:
    from perfprobe.errors import UsageError
    from perfprobe.load.trace import read_trace

    trace = tmp_path / "t.jsonl"
    trace.write_text(json.dumps(line) + "\n")
    with pytest.raises(UsageError, match=says):
        read_trace(str(trace), "llm_standin")


def test_token_figures_gate_a_run(server, tmp_path: Path) -> None:
    _sweep(server, tmp_path / "run", "--endpoint", "generate_stream", "--concurrency", "1", "--output-tokens", "4")
    passed = run_perfprobe("gate", str(tmp_path / "run"), "-t", "ttft_p99<10s", "-t", "itl_p99<10s",
                           "-t", "output_token_rate>1", "-t", "output_tokens_per_request>3")  # fmt: skip
    assert passed.returncode == 0, passed.stdout + passed.stderr
    failed = run_perfprobe("gate", str(tmp_path / "run"), "-t", "itl_p50<1us")
    assert failed.returncode == exitcodes.GATE_FAILED, failed.stdout + failed.stderr
    assert "itl_p50" in failed.stdout


def test_compare_refuses_a_generate_endpoint_in_one_line() -> None:
    from perfprobe.errors import UsageError

    with pytest.raises(UsageError, match="compare sets tensors on the wire against shared memory"):
        perfprobe.compare("llm_standin", endpoint="generate_stream", url="127.0.0.1:1")


@pytest.mark.parametrize(
    ("protocol", "extra"),
    [
        ("http", ("--endpoint", "generate_stream")),
        ("grpc", ("--mode", "stream")),  # perfprobe's own HTTP/2 stream
        ("grpc", ("--mode", "stream", "--grpc-transport", "grpcio", "--workers", "thread")),
        ("grpc", ("--mode", "stream", "--grpc-transport", "grpcio", "--workers", "asyncio")),
    ],
)
def test_a_tokenizer_counts_the_streamed_text_on_every_stream(
    server, tmp_path: Path, protocol: str, extra: tuple[str, ...]
) -> None:
    """A letter tokenizer makes the count differ from one per response: each request's tokens are the letters of
    the words the stand-in streamed."""
    tokenizer = letter_tokenizer(tmp_path / "letters")
    max_tokens = 5
    row = _sweep(
        server, tmp_path / "run", *extra, "--concurrency", "1", "--output-tokens", str(max_tokens),
        "--tokenizer", str(tokenizer), protocol=protocol,
    )[0]["row"]  # fmt: skip
    assert row["Output Tokens per Request"] == sum(len(word) for word in standin_words()[:max_tokens])
    settings = json.loads((tmp_path / "run" / "results.json").read_text())["settings"]
    assert settings["token_count"] == f"by the tokenizer {tokenizer}"


def test_a_sequence_model_on_a_generate_endpoint_is_refused_in_one_line() -> None:
    """Triton 2.51's generate extension takes no correlation id (``sequence_id`` as a field or in
    ``parameters`` is refused: "must specify a non-zero or non-empty correlation ID", tried against
    tests/sequence_models/running_sum), so the run is refused before any load rather than failing every step."""
    from perfprobe.client.model import ModelDescription
    from perfprobe.errors import UsageError
    from perfprobe.load.sendpath import check_combination

    stateful = ModelDescription("running_sum", ("1",), "", "python", 8, (), (), sequence_batching=True)
    for endpoint in ("generate", "generate_stream"):
        with pytest.raises(UsageError, match=f"running_sum is a sequence model, and --endpoint {endpoint} carries no"):
            check_combination("http", "sync", stateful, endpoint)
    check_combination("grpc", "stream", stateful)  # a gRPC stream carries the sequence's id: allowed


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"goodput": 5}, "--goodput: '5' is not a limit"),
        ({"tokenizer": 5}, "--tokenizer 5: no tokenizer.json there"),
        ({"tokenizer": "GARBAGE"}, "not a Hugging Face tokenizer.json"),
        ({"prompts": "x"}, "--prompts must be a number"),
        ({"prompts": 0}, "--prompts must be at least 1"),
        ({"prompt_tokens": "0"}, "MEAN must be from 1"),
        ({"output_tokens": "16:-2"}, "STDDEV at least 0"),
        ({"endpoint": "chat"}, "--endpoint must be one of infer, generate, generate_stream"),
        ({"endpoint": "generate", "shared_memory": "system"}, "tensors cannot travel in shared memory"),
    ],
)
def test_generative_options_of_the_wrong_kind_are_refused_in_one_line(tmp_path: Path, options: dict, says: str) -> None:
    from perfprobe.errors import UsageError
    from perfprobe.runs.options import SweepOptions
    from perfprobe.runs.plan import plan

    if options.get("tokenizer") == "GARBAGE":
        garbage = tmp_path / "tokenizer.json"
        garbage.write_text("not a tokenizer")
        options = {"tokenizer": str(garbage)}
    with pytest.raises(UsageError, match=says):
        plan(SweepOptions(model="llm_standin", **options))
