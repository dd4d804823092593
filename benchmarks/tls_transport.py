"""gRPC over TLS or compressed: perfprobe's own HTTP/2 connections against grpcio's channel, on one Triton.

Until 2026-11-23 any TLS or compressed run went through grpcio. Each measurement is one ``perfprobe sweep``
command at one concurrency against an embedded real Triton whose gRPC endpoint takes TLS only
(a self-signed certificate made for the run, passed as ``--ssl-ca-file``); the two transports run
back to back in an order that alternates round by round, each with its default workers
(greenlets on h2, threads on grpcio unary calls), and the median of the rounds is reported.
``--compression gzip`` compresses every request on both transports; ``--no-tls`` leaves TLS out.

    python benchmarks/tls_transport.py [--levels 1,8] [--rounds 3] [--compression gzip] [--no-tls]
        [--markdown FILE]
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
from pathlib import Path

from processes import alternating_rounds, publish, reported_windows

from perfprobe.measure.histogram import LatencyHistogram
from perfprobe.server import EmbeddedServer

TRANSPORTS = ("h2", "grpcio")


@dataclass
class Measured:
    throughput: float
    cpu_us_per_request: float
    p50_us: float


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A key and a certificate for 127.0.0.1, valid a day: the server's, and the CA the client trusts."""
    key, cert = folder / "server.key", folder / "server.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


def measure(server: EmbeddedServer, flags: list[str], level: int, transport: str) -> Measured:
    """One sweep at ``level`` on ``transport``; ``flags``: TLS and compression, the same for both transports."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [sys.executable, "-m", "perfprobe", "sweep", "-i", "grpc", "-u", server.grpc_url, *flags,
             "-m", "simple", "--grpc-transport", transport, "--concurrency", str(level),
             "--measurement-interval", "2000", "--max-trials", "6", "--no-report", "--output-dir", out],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600,
        )  # fmt: skip
        _, windows = reported_windows(out)
    latency = LatencyHistogram()
    for window in windows:
        latency.merge(LatencyHistogram.decode(window["latency_histogram"]))
    completed = sum(w["completed"] for w in windows)
    seconds = sum(w["duration_ns"] for w in windows) / 1e9
    return Measured(
        completed / seconds,
        sum(w["client_cpu_ns"] for w in windows) / completed / 1000,
        latency.percentile_us(50),
    )


def table(results: dict, levels: list[int]) -> str:
    def median(runs: list[Measured], field: str) -> float:
        return statistics.median(getattr(m, field) for m in runs)

    lines = [
        "| concurrency | infer/s h2 | infer/s grpcio | h2 ÷ grpcio | client CPU µs/req h2 | grpcio | h2 ÷ grpcio "
        "| p50 µs h2 | grpcio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for level in levels:
        own, theirs = (results[(level, transport)] for transport in TRANSPORTS)
        rate = [median(runs, "throughput") for runs in (own, theirs)]
        cpu = [median(runs, "cpu_us_per_request") for runs in (own, theirs)]
        p50 = [median(runs, "p50_us") for runs in (own, theirs)]
        lines.append(
            f"| {level} | {rate[0]:,.0f} | {rate[1]:,.0f} | {rate[0] / rate[1]:.2f} | {cpu[0]:.0f} | {cpu[1]:.0f} "
            f"| {cpu[0] / cpu[1]:.2f} | {p50[0]:.0f} | {p50[1]:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compression", choices=["gzip", "deflate"], help="compress every request")
    parser.add_argument("--no-tls", action="store_true", help="plain gRPC (with --compression: compression alone)")
    parser.add_argument("--markdown", help="append the table to this file")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        server_args, flags = [], ["--compression", args.compression] if args.compression else []
        if not args.no_tls:
            key, cert = self_signed(Path(folder))
            server_args = ["--grpc-use-ssl=true", f"--grpc-server-cert={cert}", f"--grpc-server-key={key}"]
            flags += ["--ssl-ca-file", str(cert)]
        with EmbeddedServer(builtin_models=["simple"], pick_free_ports=True, extra_args=server_args) as server:
            results = alternating_rounds(
                args.rounds, levels, TRANSPORTS, lambda level, transport: measure(server, flags, level, transport)
            )
    over = " ".join(part for part in ("TLS" if not args.no_tls else "", args.compression or "") if part) or "plain"
    text = (
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}; server and client share "
        f"it. gRPC {over}. Median of {args.rounds} alternating rounds.\n\n"
        + table(results, levels)
        + f"\n\nRun time: {time.monotonic() - started:.0f} s.\n"
    )
    publish(text, args.markdown)


if __name__ == "__main__":
    main()
