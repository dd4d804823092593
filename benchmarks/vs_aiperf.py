"""perfprobe beside AIPerf on the same generative model, server and endpoint, checked against the server's own timing.

Both tools drive Triton's ``generate_stream`` endpoint (server-sent events) of the built-in ``llm_standin``
with the same prompt and answer lengths (64 tokens in, 16 out), the same local word-level tokenizer
(so every token both count is one word the stand-in sent), closed loop at each ``--concurrency``.
AIPerf 0.13 has no KServe/Triton generate endpoint of its own; its ``template`` endpoint sends the
same JSON body and reads ``text_output`` from each event.

The stand-in writes its own timing of every request (``timing_log``: arrival, first and last token
sent, tokens), so each tool's time to first token and inter-token latency can be set against what the
server did in the same run: a client figure can only add delivery time to the server's, never remove it.

Client CPU is the tool's whole process tree (its waited-for children included), measured as the
marginal cost: (CPU of a run of max(60, ``--requests`` × c) requests − CPU of a run of 2×c) / the requests
between,
so start-up (imports, tokenizer loading, AIPerf's service processes) is left out for both.
Rounds alternate which tool goes first; tables give the median and range over rounds.

    python benchmarks/vs_aiperf.py [--rounds 6] [--concurrency 1,4,16] [--requests 15]
        [--server-cpus 0 --client-cpus 1] [--markdown docs/benchmarks/generative.md]

AIPerf runs from its own environment (``make .venv-aiperf/.installed``, from benchmarks/requirements-aiperf.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rounds import cpus, summary

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from word_tokenizer import word_tokenizer  # noqa: E402

from perfprobe.server import EmbeddedServer  # noqa: E402

MODEL = "llm_standin"
PROMPT_TOKENS, OUTPUT_TOKENS = 64, 16
AIPERF = ROOT / ".venv-aiperf" / "bin" / "aiperf"
TEMPLATE = '{"text_input": {{ text|tojson }}, "max_tokens": {{ max_tokens }}, "stream": true}'
FIGURES = ("ttft_p50", "ttft_p99", "itl_p50", "tokens_per_s")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def timed_run(command: list[str], cpus: set[int] | None, log: Path) -> float:
    """Run ``command`` to its end; the CPU seconds it and its waited-for children used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=900, check=False, preexec_fn=pin)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} exited {done.returncode}: {log.read_text()[-600:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def perfprobe_run(url: str, concurrency: int, requests: int, tokenizer: Path, out: Path, cpus: set[int] | None):
    command = [
        sys.executable, "-m", "perfprobe", "sweep", "-u", url, "-m", MODEL, "--endpoint", "generate_stream",
        "--tokenizer", str(tokenizer), "--prompt-tokens", str(PROMPT_TOKENS), "--output-tokens", str(OUTPUT_TOKENS),
        "--concurrency", str(concurrency), "--measurement-mode", "count_windows", "--measurement-request-count",
        str(requests), "--stability-windows", "1", "--max-trials", "1", "--no-report", "--output-dir", str(out),
    ]  # fmt: skip
    cpu = timed_run(command, cpus, out.with_suffix(".log"))
    row = json.loads((out / "results.json").read_text())["levels"][0]["row"]
    figures = {
        "ttft_p50": row["Time To First Token p50"] / 1000,
        "ttft_p99": row["Time To First Token p99"] / 1000,
        "itl_p50": row["Inter Token Latency p50"] / 1000,
        "tokens_per_s": row["Output Tokens/Second"],
    }
    return cpu, int(row["Completed"]), figures


def aiperf_run(url: str, concurrency: int, requests: int, tokenizer: Path, out: Path, cpus: set[int] | None):
    extra = json.dumps({"payload_template": TEMPLATE, "response_field": "text_output"})
    command = [
        str(AIPERF), "profile", "-m", MODEL, "--url", f"http://{url}", "--endpoint-type", "template",
        "--endpoint", f"/v2/models/{MODEL}/generate_stream", "--streaming", "--extra-inputs", extra,
        "--tokenizer", str(tokenizer), "--isl", str(PROMPT_TOKENS), "--osl", str(OUTPUT_TOKENS),
        "--concurrency", str(concurrency), "--request-count", str(requests), "--artifact-dir", str(out),
        "--ui-type", "none", "--random-seed", "1",
    ]  # fmt: skip
    cpu = timed_run(command, cpus, out.with_suffix(".log"))
    found = json.loads((out / "profile_export_aiperf.json").read_text())
    figures = {
        "ttft_p50": found["time_to_first_token"]["p50"],
        "ttft_p99": found["time_to_first_token"]["p99"],
        "itl_p50": found["inter_token_latency"]["p50"],
        "tokens_per_s": found["output_token_throughput"]["avg"],
    }
    return cpu, int(found["request_count"]["avg"]), figures


def server_timing(lines: list[str]) -> dict[str, float]:
    """The stand-in's own view of the requests it finished: TTFT (arrival to first token) and ITL, in ms."""
    ttft, itl = [], []
    for line in lines:
        arrived, first, last, tokens = line.split()
        ttft.append((float(first) - float(arrived)) * 1000)
        if int(tokens) > 1:
            itl.append((float(last) - float(first)) * 1000 / (int(tokens) - 1))
    return {"ttft_p50": statistics.median(ttft), "ttft_p99": percentile(ttft, 0.99), "itl_p50": statistics.median(itl)}


def repository(work: Path, timing_log: Path) -> Path:
    """A copy of the built-in stand-in that writes its timing log."""
    import perfprobe

    target = work / "models" / MODEL
    shutil.copytree(Path(perfprobe.__file__).parent / "server" / "models" / MODEL, target)
    config = target / "config.pbtxt"
    config.write_text(
        config.read_text() + f'parameters: {{ key: "timing_log" value: {{ string_value: "{timing_log}" }} }}\n'
    )
    return work / "models"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--requests", type=int, default=15, help="requests a run per request in flight (at least 60)")
    parser.add_argument("--server-cpus", type=cpus)
    parser.add_argument("--client-cpus", type=cpus)
    parser.add_argument("--markdown", help="append the tables to this file")
    args = parser.parse_args()
    if not AIPERF.exists():
        print(f"no AIPerf at {AIPERF}: python -m venv .venv-aiperf && .venv-aiperf/bin/pip install "
              "-r benchmarks/requirements-aiperf.txt", file=sys.stderr)  # fmt: skip
        return 2
    levels = [int(level) for level in args.concurrency.split(",")]
    seen: dict[tuple[str, int], dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        tokenizer = word_tokenizer(work / "tokenizer")
        timing_log = work / "timing.log"
        timing_log.touch()
        if args.server_cpus:
            os.sched_setaffinity(0, args.server_cpus)  # the server and its python stubs inherit it
        with EmbeddedServer(builtin_models=[], model_repositories=[repository(work, timing_log)],
                            pick_free_ports=True) as server:  # fmt: skip
            runners = {"perfprobe": perfprobe_run, "aiperf": aiperf_run}
            for round_ in range(args.rounds):
                order = ["perfprobe", "aiperf"] if round_ % 2 == 0 else ["aiperf", "perfprobe"]
                for level in levels:
                    for tool in order:
                        run = runners[tool]
                        out = work / f"{tool}-{round_}-{level}"
                        url, pinned, requests = server.http_url, args.client_cpus, max(60, args.requests * level)
                        small_cpu, small_done, _ = run(url, level, 2 * level, tokenizer, out, pinned)
                        shutil.rmtree(out, ignore_errors=True)
                        start = len(timing_log.read_text().splitlines())
                        cpu, done, figures = run(url, level, requests, tokenizer, out, pinned)
                        served = timing_log.read_text().splitlines()[start:]
                        per_request_us = (cpu - small_cpu) / max(done - small_done, 1) * 1e6
                        into = seen.setdefault((tool, level), {})
                        for name, value in figures.items():
                            into.setdefault(name, []).append(value)
                        into.setdefault("cpu_us_per_request", []).append(per_request_us)
                        into.setdefault("cpu_us_per_token", []).append(per_request_us / OUTPUT_TOKENS)
                        for name, value in server_timing(served).items():
                            into.setdefault(f"server_{name}", []).append(value)
                        print(f"round {round_ + 1} c={level} {tool}: {figures} cpu/req {per_request_us:.0f} µs",
                              flush=True)  # fmt: skip
    text = report(seen, levels, args)
    print(text)
    if args.markdown:
        with open(args.markdown, "a") as handle:
            handle.write(text)
    return 0


def report(seen: dict[tuple[str, int], dict[str, list[float]]], levels: list[int], args: argparse.Namespace) -> str:
    lines = [
        f"\n### {time.strftime('%Y-%m-%d')}: {args.rounds} rounds, max(60, {args.requests} × c) requests a run, "
        f"{PROMPT_TOKENS} tokens in / {OUTPUT_TOKENS} out, server on cores {args.server_cpus or 'all'}, "
        f"tools on {args.client_cpus or 'all'} ({platform.node()}, {os.cpu_count()} CPUs)\n",
        'Median (range) over rounds; times in ms. "server" is the stand-in\'s own timing of the requests that tool '
        "sent in the same run (arrival to first token sent; (last − first token sent) / (tokens − 1)).\n",
        "| c | tool | TTFT p50 | TTFT p99 | ITL p50 | output tokens/s | server TTFT p50 | server ITL p50 "
        "| client CPU µs/request | µs/token |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for level in levels:
        for tool in ("perfprobe", "aiperf"):
            got = seen.get((tool, level), {})
            cells = [summary(got.get(name, []), 2) for name in FIGURES]
            cells += [summary(got.get("server_ttft_p50", []), 2), summary(got.get("server_itl_p50", []), 2)]
            cells += [summary(got.get("cpu_us_per_request", []), 0), summary(got.get("cpu_us_per_token", []), 0)]
            lines.append(f"| {level} | {tool} | " + " | ".join(cells) + " |")
    lines += ["", "perfprobe ÷ AIPerf, median of the per-round ratios (range):", "",
              "| c | TTFT p50 | TTFT p99 | ITL p50 | output tokens/s | client CPU per token |",
              "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for level in levels:
        ours, theirs = seen.get(("perfprobe", level), {}), seen.get(("aiperf", level), {})
        cells = []
        for name in (*FIGURES, "cpu_us_per_token"):
            ratios = [a / b for a, b in zip(ours.get(name, []), theirs.get(name, []), strict=False) if b]
            cells.append(summary(ratios))
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
