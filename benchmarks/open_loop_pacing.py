"""Open loop: sleeping until each send (today's default) against yielding through the last millisecond.

Until 2026-11-23 an open-loop worker slept until a millisecond before each send and yielded in a
loop through that millisecond, because gevent's and asyncio's timers wake up to a millisecond
late. The workers now sleep on a timerfd (a thread: its own clock_nanosleep-like wait) to the
instant; ``--send-spin 1000`` brings back the yielding millisecond, which is how this compares the
two in one run. Each measurement is one ``perfprobe sweep`` command at one request rate on one
embedded real Triton (sharing the machine, as the load generator usually does in a test rig);
the two settings run back to back in an order that alternates round by round, and the median of
the rounds is reported: client CPU per request (in-window, as perfprobe reports it), how late
sends left on average (intended-time latency minus latency), sends over 1 ms late, the latency
the client measured and the server's own time per request.

    python benchmarks/open_loop_pacing.py [--rates 200,1000,2000] [--configs http:greenlet,http:thread,grpc:greenlet]
        [--rounds 3] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from processes import alternating_rounds, publish, reported_windows

from perfprobe.measure.histogram import LatencyHistogram
from perfprobe.server import EmbeddedServer

SPINS_US = (0, 1000)  # today's default; the last millisecond yielded through, as before


@dataclass
class Measured:
    throughput: float
    cpu_us_per_request: float
    mean_lag_us: float
    late_per_thousand: float
    p50_us: float
    p99_us: float
    server_us: float  # the server's time per request (its success average)


def sweep_command(server: EmbeddedServer, protocol: str, workers: str, rate: int, spin_us: int, out: str) -> list[str]:
    return [
        sys.executable, "-m", "perfprobe", "sweep", "-i", protocol, "-u", server.url(protocol), "-m", "simple",
        "--request-rate", str(rate), "--workers", workers, "--send-spin", str(spin_us),
        "--measurement-interval", "2000", "--stability-windows", "3", "--max-trials", "6",
        "--metrics-url", server.metrics_url, "--no-report", "--output-dir", out,
    ]  # fmt: skip


def measure(server: EmbeddedServer, protocol: str, workers: str, rate: int, spin_us: int) -> Measured:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            sweep_command(server, protocol, workers, rate, spin_us, out),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=600,
        )
        _, windows = reported_windows(out)
    completed = sum(w["completed"] for w in windows)
    seconds = sum(w["duration_ns"] for w in windows) / 1e9
    latency, intended = LatencyHistogram(), LatencyHistogram()
    for window in windows:
        latency.merge(LatencyHistogram.decode(window["latency_histogram"]))
        intended.merge(LatencyHistogram.decode(window["intended_histogram"]))
    server_ns = sum(w["server"]["simple"]["ns"]["success"] for w in windows)
    return Measured(
        completed / seconds,
        sum(w["client_cpu_ns"] for w in windows) / completed / 1000,
        intended.mean_us - latency.mean_us,
        1000 * sum(w["late_sends"] for w in windows) / completed,
        latency.percentile_us(50),
        latency.percentile_us(99),
        server_ns / completed / 1000,
    )


Results = dict[tuple[Any, Any], list[Measured]]  # ((protocol, workers, rate), spin µs) → rounds


def table(results: Results, configs: list[tuple[str, str]], rates: list[int]) -> str:
    def median(runs: list[Measured], field: str) -> float:
        return statistics.median(getattr(m, field) for m in runs)

    lines = [
        "| protocol | workers | rate/s | infer/s (sleep / spin) | client CPU µs/req, sleep | spin 1 ms | sleep ÷ spin "
        "| mean send lag µs, sleep | spin | late sends ‰, sleep | spin | p50 µs, sleep | spin | p99 µs, sleep | spin "
        "| server µs/req, sleep | spin |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for protocol, workers in configs:
        for rate in rates:
            sleep, spin = (results[((protocol, workers, rate), spin_us)] for spin_us in SPINS_US)
            cpu = [median(runs, "cpu_us_per_request") for runs in (sleep, spin)]
            cells = [
                f"{median(sleep, 'throughput'):,.0f} / {median(spin, 'throughput'):,.0f}",
                f"{cpu[0]:.0f}",
                f"{cpu[1]:.0f}",
                f"{cpu[0] / cpu[1]:.2f}",
            ]
            for field, form in (
                ("mean_lag_us", "{:.0f}"),
                ("late_per_thousand", "{:.1f}"),
                ("p50_us", "{:.0f}"),
                ("p99_us", "{:.0f}"),
                ("server_us", "{:.0f}"),
            ):
                cells += [form.format(median(sleep, field)), form.format(median(spin, field))]
            lines.append(f"| {protocol} | {workers} | {rate:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="200,1000,2000")
    parser.add_argument("--configs", default="http:greenlet,http:thread,grpc:greenlet", help="protocol:workers,...")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--markdown", help="append the table to this file")
    args = parser.parse_args()
    rates = [int(rate) for rate in args.rates.split(",")]
    configs = [(text.partition(":")[0], text.partition(":")[2]) for text in args.configs.split(",")]
    started = time.monotonic()
    server = EmbeddedServer(pick_free_ports=True).start()
    try:
        cells = [(protocol, workers, rate) for protocol, workers in configs for rate in rates]
        results = alternating_rounds(
            args.rounds, cells, SPINS_US, lambda cell, spin_us: measure(server, *cell, spin_us)
        )
    finally:
        server.stop()
    text = (
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}; server and client share "
        f"it. Median of {args.rounds} alternating rounds; `sleep` = today's default (`--send-spin 0`), `spin` = "
        "`--send-spin 1000` (the last millisecond before each send yielded through, as before).\n\n"
        + table(results, configs, rates)
        + f"\n\nRun time: {time.monotonic() - started:.0f} s.\n"
    )
    publish(text, args.markdown)


if __name__ == "__main__":
    main()
