"""Load from 1, 2 and 4 processes on one embedded real Triton: what coordination costs, what spreading buys.

The server is started once; each measurement is one ``perfprobe sweep`` command (as a user runs
it) at one concurrency with ``--processes N``. For each protocol and concurrency the process
counts are run back to back, in an order that alternates round by round, so the drift of a shared
machine falls on all of them alike; the median of the rounds is reported. Client CPU per request is
in-window, as perfprobe reports it: the load processes' CPU plus the coordinator's, over the
requests completed in the reported windows. A single client core sustains 1e6 / (µs of client CPU
per request) requests/s.

    python benchmarks/processes.py [--levels 4,8,16] [--processes 1,2,4] [--rounds 3] [--markdown FILE]
        [--server-cpus 0 --client-cpus 1]   # keep the server and the load on cores of their own
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from perfprobe.server import EmbeddedServer


@dataclass
class Measured:
    protocol: str
    processes: int
    level: int
    throughput: float
    cpu_us_per_request: float
    busiest_core: float  # the most loaded process's share of its core
    coordinator: float  # the coordinator's part of the client CPU (0 with one process: there is none)

    @property
    def per_core(self) -> float:
        return 1e6 / self.cpu_us_per_request if self.cpu_us_per_request else 0.0


def measure(
    server: EmbeddedServer, protocol: str, processes: int, level: int, window_ms: int, cpus: set[int] | None
) -> Measured:
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable, "-m", "perfprobe", "sweep", "-i", protocol, "-u", server.url(protocol), "-m", "simple",
            "--concurrency", str(level), "--processes", str(processes), "--measurement-interval", str(window_ms),
            "--stability-windows", "3", "--max-trials", "6", "--metrics-url", server.metrics_url, "--no-report",
            "--output-dir", out,
        ]  # fmt: skip
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        subprocess.run(command, check=True, capture_output=True, timeout=600, preexec_fn=pin)
        document = json.loads((Path(out) / "results.json").read_text())
    entry = document["levels"][0]
    reported = [w for w in entry["windows"] if w["index"] in entry["reported_windows"]]
    completed = sum(w["completed"] + sum(w["errors"].values()) for w in reported)
    duration_ns = sum(w["duration_ns"] for w in reported)
    cpu_ns = sum(w["client_cpu_ns"] for w in reported)
    load_cpu_ns = sum(part["client_cpu_ns"] for w in reported for part in w.get("processes", []))
    shares = entry.get("processes", [])
    busiest = max((part["client_cpu_share"] for part in shares), default=cpu_ns / duration_ns)
    return Measured(
        protocol,
        processes,
        level,
        sum(w["completed"] for w in reported) / (duration_ns / 1e9),
        cpu_ns / completed / 1000,
        busiest,
        (cpu_ns - load_cpu_ns) / cpu_ns if shares else 0.0,
    )


def median_of(runs: list[Measured]) -> list[Measured]:
    keyed: dict[tuple[str, int, int], list[Measured]] = {}
    for measured in runs:
        keyed.setdefault((measured.protocol, measured.processes, measured.level), []).append(measured)
    return [
        Measured(
            protocol,
            processes,
            level,
            statistics.median(m.throughput for m in items),
            statistics.median(m.cpu_us_per_request for m in items),
            statistics.median(m.busiest_core for m in items),
            statistics.median(m.coordinator for m in items),
        )
        for (protocol, processes, level), items in sorted(keyed.items())
    ]


def report(results: list[Measured], counts: list[int], levels: list[int], rounds: int) -> str:
    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}; server and client share it. "
        f"Median of {rounds} alternating rounds.",
        "",
        "| protocol | processes | concurrency | infer/s | vs 1 process | client CPU µs/req | vs 1 process "
        "| vs 1 process at the same in-flight per process | busiest process's core "
        "| coordinator's part of client CPU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = {(m.protocol, m.level): m for m in results if m.processes == counts[0]}
    for m in results:
        ref = base[(m.protocol, m.level)]
        same = base.get((m.protocol, m.level // m.processes)) if m.level % m.processes == 0 else None
        per_process = f"{m.cpu_us_per_request / same.cpu_us_per_request:.2f}" if same else "–"
        lines.append(
            f"| {m.protocol} | {m.processes} | {m.level} | {m.throughput:,.0f} | {m.throughput / ref.throughput:.2f} "
            f"| {m.cpu_us_per_request:.1f} | {m.cpu_us_per_request / ref.cpu_us_per_request:.2f} | {per_process} "
            f"| {m.busiest_core:.0%} | {m.coordinator:.1%} |"
        )
    lines += ["", "Bars (#11):"]
    for protocol in sorted({m.protocol for m in results}):
        for level in [value for value in levels if value >= 8]:
            same_load = [m for m in results if (m.protocol, m.level) == (protocol, level)]
            cpus = [m.cpu_us_per_request for m in same_load]
            spread = max(cpus) / min(cpus)
            lines.append(
                f"- {protocol} c={level}: client CPU per request with {', '.join(map(str, counts))} processes within "
                f"{spread:.2f}x of each other (bar 1.2x): {'met' if spread <= 1.2 else 'missed'}"
            )
            two = next((m for m in same_load if m.processes == 2), None)
            if two is not None:
                ratio = two.throughput / base[(protocol, level)].throughput
                lines.append(
                    f"- {protocol} c={level}: 2 processes at {ratio:.2f}x the throughput of 1 (bar 1.0x): "
                    f"{'met' if ratio >= 1.0 else 'missed'}"
                )
    lines += ["", "Requests/s one client core sustains (1e6 / client CPU µs per request; 1 process, top level):", ""]
    lines += ["| protocol | µs of client CPU per request | requests/s per client core |", "|---|---|---|"]
    for protocol in sorted({m.protocol for m in results}):
        one = max((m for m in results if m.protocol == protocol and m.processes == counts[0]), key=lambda m: m.level)
        lines.append(f"| {protocol} | {one.cpu_us_per_request:.1f} | {one.per_core:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="4,8,16")
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--protocols", default="http,grpc")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window-ms", type=int, default=1500)
    parser.add_argument("--markdown", help="append the tables to this file")
    parser.add_argument("--server-cpus", help="cores for the server (and its backends), e.g. 0")
    parser.add_argument("--client-cpus", help="cores for the perfprobe commands, e.g. 1")
    args = parser.parse_args()
    everywhere = os.sched_getaffinity(0)
    server_cpus = {int(v) for v in args.server_cpus.split(",")} if args.server_cpus else everywhere
    client_cpus = {int(v) for v in args.client_cpus.split(",")} if args.client_cpus else None
    levels = [int(v) for v in args.levels.split(",")]
    counts = [int(v) for v in args.processes.split(",")]
    started = time.monotonic()
    runs: list[Measured] = []
    os.sched_setaffinity(0, server_cpus)  # the server and its backend processes inherit it
    server = EmbeddedServer(pick_free_ports=True).start()
    os.sched_setaffinity(0, everywhere)
    try:
        for protocol in args.protocols.split(","):
            for level in levels:
                for round_index in range(args.rounds):
                    order = counts if round_index % 2 == 0 else list(reversed(counts))
                    for processes in order:
                        runs.append(measure(server, protocol, processes, level, args.window_ms, client_cpus))
                print(f"{protocol} c={level} done", flush=True)
    finally:
        server.stop()
    text = report(median_of(runs), counts, levels, args.rounds)
    if args.server_cpus or args.client_cpus:
        pinned = f"Server on cores {sorted(server_cpus)}, perfprobe on cores {sorted(client_cpus or everywhere)}."
        text = pinned + "\n" + text
    text += f"\n\nRun time: {time.monotonic() - started:.0f} s.\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "a") as out:
            out.write("\n" + text)


if __name__ == "__main__":
    main()
