"""Load from 1, 2 and 4 processes on one embedded real Triton: what coordination costs, what spreading buys.

For each protocol, process count and concurrency, one sweep of ``simple`` through the library
(``perfprobe.sweep(..., processes=N)``), alternating the process counts round by round so drift
on a shared machine falls on all alike; the median of the rounds is reported. Client CPU per
request is in-window: the load processes' CPU plus the coordinator's, over the requests completed
in the reported windows. A single client core's capacity is 1e6 / (µs of client CPU per request).

    python benchmarks/processes.py [--levels 8,16] [--processes 1,2,4] [--rounds 2] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import dataclass

import perfprobe
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


def measure(server: EmbeddedServer, protocol: str, processes: int, levels: list[int], window_ms: int) -> list[Measured]:
    result = perfprobe.sweep(
        "simple",
        url=server.url(protocol),
        protocol=protocol,
        processes=processes,
        concurrency=f"{levels[0]}:{levels[-1]}:x2",
        measurement_interval=window_ms,
        stability_windows=3,
        max_trials=6,
        metrics_url=server.metrics_url,
    )
    found = []
    for level in result.level_results:
        if int(level.level) not in levels:
            continue
        shares = level.shares()
        busiest = max((share.cpu_share for share in shares), default=0.0)
        if not shares:  # one process: the run's own CPU over the window's length
            merged = level.merged()
            busiest = sum(w.cpu_ns for w in level.reported) / merged.duration_ns
        total_cpu = sum(w.cpu_ns for w in level.reported)
        coordinating = sum(w.cpu_ns - sum(share.cpu_ns for share in w.shares) for w in level.reported if w.shares)
        found.append(
            Measured(
                protocol,
                processes,
                int(level.level),
                level.merged().throughput(),
                level.cpu_us_per_request(),
                busiest,
                coordinating / total_cpu if total_cpu else 0.0,
            )
        )
    return found


def median_of(rounds: list[list[Measured]]) -> list[Measured]:
    keyed: dict[tuple[str, int, int], list[Measured]] = {}
    for measured in (m for one in rounds for m in one):
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
        "| busiest process's core | coordinator's part of client CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = {(m.protocol, m.level): m for m in results if m.processes == counts[0]}
    for m in results:
        ref = base[(m.protocol, m.level)]
        lines.append(
            f"| {m.protocol} | {m.processes} | {m.level} | {m.throughput:,.0f} | {m.throughput / ref.throughput:.2f} "
            f"| {m.cpu_us_per_request:.1f} | {m.cpu_us_per_request / ref.cpu_us_per_request:.2f} "
            f"| {m.busiest_core:.0%} | {m.coordinator:.1%} |"
        )
    lines += ["", "Bars (#11):"]
    for protocol in sorted({m.protocol for m in results}):
        cpus = [m.cpu_us_per_request for m in results if m.protocol == protocol]
        spread = max(cpus) / min(cpus)
        lines.append(
            f"- {protocol}: client CPU per request across {', '.join(map(str, counts))} processes and "
            f"all levels within {spread:.2f}x of each other (bar 1.2x): {'met' if spread <= 1.2 else 'missed'}"
        )
        for level in levels:
            two = next((m for m in results if (m.protocol, m.processes, m.level) == (protocol, 2, level)), None)
            if two is not None:
                ratio = two.throughput / base[(protocol, level)].throughput
                lines.append(
                    f"- {protocol} c={level}: 2 processes at {ratio:.2f}x the throughput of 1 (bar 1.0x): "
                    f"{'met' if ratio >= 1.0 else 'missed'}"
                )
    lines += [
        "",
        "Requests/s one client core sustains (1e6 / client CPU µs per request, 1 process, highest level):",
        "",
    ]
    lines += ["| protocol | µs of client CPU per request | requests/s per client core |", "|---|---|---|"]
    for protocol in sorted({m.protocol for m in results}):
        one = max((m for m in results if m.protocol == protocol and m.processes == counts[0]), key=lambda m: m.level)
        lines.append(f"| {protocol} | {one.cpu_us_per_request:.1f} | {one.per_core:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="8,16")
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--protocols", default="http,grpc")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--window-ms", type=int, default=2000)
    parser.add_argument("--markdown", help="append the tables to this file")
    args = parser.parse_args()
    levels = [int(v) for v in args.levels.split(",")]
    counts = [int(v) for v in args.processes.split(",")]
    started = time.monotonic()
    rounds: list[list[Measured]] = []
    with EmbeddedServer(pick_free_ports=True) as server:
        for round_index in range(args.rounds):
            found: list[Measured] = []
            order = counts if round_index % 2 == 0 else list(reversed(counts))
            for protocol in args.protocols.split(","):
                for processes in order:
                    found += measure(server, protocol, processes, levels, args.window_ms)
                    print(f"round {round_index + 1}: {protocol} x{processes} done", flush=True)
            rounds.append(found)
    text = report(median_of(rounds), counts, levels, args.rounds)
    text += f"\n\nRun time: {time.monotonic() - started:.0f} s.\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "a") as out:
            out.write("\n" + text)


if __name__ == "__main__":
    main()
