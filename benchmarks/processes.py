"""Load from 1, 2 and 4 processes on one embedded real Triton: what coordination costs, what spreading buys.

The server is started once; each measurement is one ``perfprobe sweep`` command (as a user runs
it) at one concurrency with ``--processes N``. For each protocol and concurrency the process
counts are run back to back, in an order that alternates round by round, so the drift of a shared
machine falls on all of them alike; the median of the rounds is reported. Client CPU per request is
in-window, as perfprobe reports it: the load processes' CPU plus the coordinator's, over the
requests completed in the reported windows. A single client core sustains 1e6 / (µs of client CPU
per request) requests/s. With ``--independent``, N separate one-process commands at c/N run side by
side with nothing coordinating them: what they cost over one process is what splitting costs by
itself, what ``--processes N`` costs over them is what coordination costs.

    python benchmarks/processes.py [--levels 4,8,16] [--processes 1,2,4] [--rounds 3] [--markdown FILE]
        [--server-cpus 0 --client-cpus 1]   # keep the server and the load on cores of their own
        [--instances 8]                     # serve `simple` with 8 instances, so the server is not the limit
        [--perf-analyzer]                   # and run perf_analyzer at each level too, on the client's cores
        [--independent]                     # the control: N separate commands (and perf_analyzers) at c/N
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vs_perf_analyzer import children_measured, install_perf_analyzer, read_row

from perfprobe.client import make_client
from perfprobe.server import EmbeddedServer
from perfprobe.server.repository import materialize_builtin


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


@dataclass
class Windows:
    """How every perfprobe command measures (until stable, or ``fixed``), and on which workers.

    Fixed is a warm-up and then exactly three windows, so that commands started together (the
    control) measure over nearly the same seconds: a command whose windows ran while the others had
    already stopped would be measured on a quieter machine.
    """

    ms: int
    fixed: bool = False
    warmup_s: float = 3.0
    workers: str | None = None  # every command's worker kind; None: perfprobe's default

    def flags(self) -> list[str]:
        flags = ["--measurement-interval", str(self.ms), "--stability-windows", "3"]
        if self.workers:
            flags += ["--workers", self.workers]
        if self.fixed:
            return [
                *flags,
                "--max-trials",
                "3",
                "--stability-percentage",
                "1000",
                "--warmup-seconds",
                str(self.warmup_s),
            ]
        return [*flags, "--max-trials", "6"]


def sweep_command(
    server: EmbeddedServer, protocol: str, processes: int, level: int, windows: Windows, out: str
) -> list[str]:
    return [
        sys.executable, "-m", "perfprobe", "sweep", "-i", protocol, "-u", server.url(protocol), "-m", "simple",
        "--concurrency", str(level), "--processes", str(processes), *windows.flags(),
        "--metrics-url", server.metrics_url, "--no-report", "--output-dir", out,
    ]  # fmt: skip


def run_all(
    commands: list[list[str]], cpus: set[int] | None, env: dict[str, str] | None = None, check: bool = True
) -> None:
    """Start every command at once (on ``cpus``) and wait for all; with ``check``, a failure stops the benchmark."""
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    running = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=pin)
        for command in commands
    ]
    for process, command in zip(running, commands, strict=True):
        _, error = process.communicate(timeout=600)
        if check and process.returncode:
            raise subprocess.CalledProcessError(process.returncode, command, stderr=error)


def reported_windows(out: str) -> tuple[dict, list[dict]]:
    document = json.loads((Path(out) / "results.json").read_text())
    entry = document["levels"][0]
    return entry, [w for w in entry["windows"] if w["index"] in entry["reported_windows"]]


def measure(
    server: EmbeddedServer, protocol: str, processes: int, level: int, windows: Windows, cpus: set[int] | None
) -> Measured:
    with tempfile.TemporaryDirectory() as out:
        run_all([sweep_command(server, protocol, processes, level, windows, out)], cpus)
        entry, reported = reported_windows(out)
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


def measure_independent(
    server: EmbeddedServer, protocol: str, processes: int, level: int, windows: Windows, cpus: set[int] | None
) -> Measured:
    """The control: ``processes`` separate one-process commands at level/processes each, all at once.

    Nothing coordinates them, so what their CPU per request adds over one process at ``level`` is
    what splitting the load costs by itself; what ``--processes`` adds over them is coordination.
    """
    outs = [tempfile.TemporaryDirectory() for _ in range(processes)]
    try:
        share = level // processes
        run_all([sweep_command(server, protocol, 1, share, windows, out.name) for out in outs], cpus)
        parts = [reported_windows(out.name)[1] for out in outs]
    finally:
        for out in outs:
            out.cleanup()
    every_window = [w for reported in parts for w in reported]
    completed = sum(w["completed"] + sum(w["errors"].values()) for w in every_window)
    cpu_ns = sum(w["client_cpu_ns"] for w in every_window)
    rates, busiest = [], 0.0
    for reported in parts:  # each command over its own windows
        seconds = sum(w["duration_ns"] for w in reported) / 1e9
        rates.append(sum(w["completed"] for w in reported) / seconds)
        busiest = max(busiest, sum(w["client_cpu_ns"] for w in reported) / 1e9 / seconds)
    return Measured(protocol, processes, level, sum(rates), cpu_ns / completed / 1000, busiest, 0.0)


@dataclass
class PeerMeasured:
    """perf_analyzer at one level: its throughput and whole-process CPU per request."""

    protocol: str
    level: int
    throughput: float
    cpu_us_per_request: float
    parts: int = 1  # perf_analyzers run at once, each at level/parts
    fixed_windows: bool = False  # three windows taken as they came, not a stable run


def pa_command(
    binary: Path, url: str, protocol: str, concurrency: int, window_ms: int, csv_path: Path, fixed_windows: bool
) -> list[str]:
    stability, trials = ("1000", "3") if fixed_windows else ("10", "6")
    return [
        str(binary), "-m", "simple", "-u", url, "-i", protocol, "--concurrency-range", f"{concurrency}:{concurrency}",
        "--measurement-interval", str(window_ms), "--stability-percentage", stability, "--max-trials", trials,
        "-f", str(csv_path),
    ]  # fmt: skip


def measure_peer(
    server: EmbeddedServer,
    protocol: str,
    level: int,
    window_ms: int,
    cpus: set[int] | None,
    parts: int = 1,
    fixed_windows: bool = False,
) -> PeerMeasured | None:
    """perf_analyzer with the same windows and stability rule; CPU over the requests the server counted.

    With ``parts`` > 1, that many perf_analyzers at level/parts each, all at once: what splitting a
    load costs a multi-threaded C++ client, the yardstick for what it costs perfprobe's processes.
    Side by side they unsettle each other's stability check, so such runs take ``fixed_windows``
    (three windows as they come), and so does the one-tool run they are compared with.
    """
    binary, env = install_perf_analyzer()
    with tempfile.TemporaryDirectory() as out, make_client("http", server.http_url) as control:
        csv_paths = [Path(out) / f"pa{index}.csv" for index in range(parts)]
        url = server.url(protocol)
        commands = [
            pa_command(binary, url, protocol, level // parts, window_ms, csv_path, fixed_windows)
            for csv_path in csv_paths
        ]
        # a level that never stabilises writes no CSV: None below
        _, cpu_s, served = children_measured(lambda: run_all(commands, cpus, env, check=False), control, "simple")
        rows = [read_row(csv_path) for csv_path in csv_paths]
    if not all(rows):
        return None
    throughput = sum(float(row["Inferences/Second"]) for row in rows)
    return PeerMeasured(protocol, level, throughput, cpu_s / max(served, 1) * 1e6, parts, fixed_windows)


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


def peer_report(results: list[Measured], peers: list[PeerMeasured], counts: list[int]) -> str:
    """perfprobe at each process count against perf_analyzer at the same concurrency."""
    lines = [
        "| protocol | concurrency | perf_analyzer infer/s | PA CPU µs/req | "
        + " | ".join(f"perfprobe ×{n} infer/s (÷ PA)" for n in counts)
        + " |",
        "|---|---|---|---|" + "---|" * len(counts),
    ]
    for protocol, level in sorted({(p.protocol, p.level) for p in peers}):
        same = [p for p in peers if (p.protocol, p.level) == (protocol, level)]
        tput, cpu = statistics.median(p.throughput for p in same), statistics.median(p.cpu_us_per_request for p in same)
        cells = []
        for n in counts:
            ours = next((m for m in results if (m.protocol, m.level, m.processes) == (protocol, level, n)), None)
            cells.append(f"{ours.throughput:,.0f} ({ours.throughput / tput:.2f})" if ours else "–")
        lines.append(f"| {protocol} | {level} | {tput:,.0f} | {cpu:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def median_peers(peers: list[PeerMeasured]) -> list[PeerMeasured]:
    """Medians over rounds, per protocol, level, number of perf_analyzers and kind of run."""
    keyed: dict[tuple[str, int, int, bool], list[PeerMeasured]] = {}
    for peer in peers:
        keyed.setdefault((peer.protocol, peer.level, peer.parts, peer.fixed_windows), []).append(peer)
    return [
        PeerMeasured(
            protocol,
            level,
            statistics.median(p.throughput for p in items),
            statistics.median(p.cpu_us_per_request for p in items),
            parts,
            fixed,
        )
        for (protocol, level, parts, fixed), items in sorted(keyed.items())
    ]


def split_report(results: list[Measured], controls: list[Measured], peers: list[PeerMeasured]) -> str:
    """``--processes N`` against N uncoordinated commands: the difference is what coordination costs."""
    coordinated = {(m.protocol, m.level, m.processes): m for m in results}
    peer = {(p.protocol, p.level, p.parts): p for p in peers}
    lines = [
        "| protocol | concurrency | processes | 1 process µs/req | `--processes N` µs/req | N separate commands µs/req "
        "| separate ÷ 1 process | `--processes N` ÷ separate | N separate infer/s "
        "| perf_analyzer ×N at c/N ÷ ×1 (CPU/req) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    bars = []
    for control in controls:
        key = (control.protocol, control.level)
        one, ours = coordinated[(*key, 1)], coordinated[(*key, control.processes)]
        single, split = peer.get((*key, 1)), peer.get((*key, control.processes))
        pa = f"{split.cpu_us_per_request / single.cpu_us_per_request:.2f}" if single and split else "–"
        cost = ours.cpu_us_per_request / control.cpu_us_per_request
        lines.append(
            f"| {control.protocol} | {control.level} | {control.processes} | {one.cpu_us_per_request:.1f} "
            f"| {ours.cpu_us_per_request:.1f} | {control.cpu_us_per_request:.1f} "
            f"| {control.cpu_us_per_request / one.cpu_us_per_request:.2f} | {cost:.2f} "
            f"| {control.throughput:,.0f} | {pa} |"
        )
        bars.append(
            f"- {control.protocol} c={control.level}, {control.processes} processes: client CPU per request "
            f"{cost:.2f}x that of {control.processes} uncoordinated commands (coordination's cost, bar 1.2x): "
            f"{'met' if cost <= 1.2 else 'missed'}"
        )
    return "\n".join([*lines, "", *bars])


def parse_cpus(text: str | None) -> set[int] | None:
    """'0-3,8' → {0, 1, 2, 3, 8}."""
    if not text:
        return None
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def wide_simple(target: Path, instances: int) -> Path:
    """`simple` with this many instances, so one server instance is not what limits the load."""
    materialize_builtin(target, ["simple"])
    config = target / "simple" / "config.pbtxt"
    config.write_text(config.read_text().replace("count: 1", f"count: {instances}"))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="4,8,16")
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--protocols", default="http,grpc")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window-ms", type=int, default=1500)
    parser.add_argument("--markdown", help="append the tables to this file")
    parser.add_argument("--server-cpus", help="cores for the server (and its backends), e.g. 0")
    parser.add_argument("--client-cpus", help="cores for the perfprobe commands, e.g. 1 or 8-15")
    parser.add_argument("--instances", type=int, default=1, help="instances of `simple` the server runs")
    parser.add_argument("--workers", choices=["greenlet", "thread", "asyncio"], help="worker kind for every command")
    parser.add_argument("--perf-analyzer", action="store_true", help="measure perf_analyzer at each level too")
    parser.add_argument(
        "--independent",
        action="store_true",
        help="the control: also run N separate one-process commands at c/N at once (and N perf_analyzers with "
        "--perf-analyzer), to tell what splitting costs by itself from what coordination costs; every perfprobe "
        "command then measures a 3 s warm-up and exactly three windows",
    )
    args = parser.parse_args()
    everywhere = os.sched_getaffinity(0)
    server_cpus = parse_cpus(args.server_cpus) or everywhere
    client_cpus = parse_cpus(args.client_cpus)
    levels = [int(v) for v in args.levels.split(",")]
    counts = [int(v) for v in args.processes.split(",")]
    # the control needs commands measured side by side: fixed windows
    windows = Windows(args.window_ms, fixed=args.independent, workers=args.workers)
    started = time.monotonic()
    runs: list[Measured] = []
    peers: list[PeerMeasured | None] = []  # None: a perf_analyzer run that never stabilised
    controls: list[Measured] = []  # N independent one-process commands at c/N
    repository = tempfile.TemporaryDirectory()
    os.sched_setaffinity(0, server_cpus)  # the server and its backend processes inherit it
    if args.instances > 1:
        server = EmbeddedServer(
            builtin_models=[], model_repositories=[wide_simple(Path(repository.name), args.instances)],
            pick_free_ports=True,
        ).start()  # fmt: skip
    else:
        server = EmbeddedServer(pick_free_ports=True).start()
    os.sched_setaffinity(0, everywhere)
    try:
        for protocol in args.protocols.split(","):
            for level in levels:
                for round_index in range(args.rounds):
                    order = counts if round_index % 2 == 0 else list(reversed(counts))
                    for processes in order:
                        runs.append(measure(server, protocol, processes, level, windows, client_cpus))
                        split = args.independent and processes > 1 and level % processes == 0
                        if split:
                            controls.append(
                                measure_independent(server, protocol, processes, level, windows, client_cpus)
                            )
                        if args.perf_analyzer and processes == 1:
                            peers.append(measure_peer(server, protocol, level, args.window_ms, client_cpus))
                        if args.perf_analyzer and (split or processes == 1 and args.independent):
                            peers.append(
                                measure_peer(server, protocol, level, args.window_ms, client_cpus, processes, True)
                            )
                print(f"{protocol} c={level} done", flush=True)
    finally:
        server.stop()
        repository.cleanup()
    text = report(median_of(runs), counts, levels, args.rounds)
    if any(peers):
        text += "\n\nAgainst perf_analyzer 2.48 at the same concurrency, on the same cores (medians):\n\n"
        text += peer_report(median_of(runs), [p for p in peers if p and not p.fixed_windows], counts)
    if controls:
        text += "\n\nWhat splitting costs by itself: N separate one-process commands at c/N, started at once "
        text += "(medians):\n\n"
        text += split_report(
            median_of(runs), median_of(controls), median_peers([p for p in peers if p and p.fixed_windows])
        )
    if windows.fixed:
        text = (
            f"Every perfprobe command: a {windows.warmup_s:g} s warm-up, then three {windows.ms} ms windows.\n" + text
        )
    if args.instances > 1:
        text = f"`simple` served with {args.instances} instances.\n" + text
    if args.server_cpus or args.client_cpus:
        pinned = f"Server on cores {sorted(server_cpus)}, perfprobe on cores {sorted(client_cpus or everywhere)}."
        text = pinned + "\n" + text
    text += f"\n\nRun time: {time.monotonic() - started:.0f} s.\n"
    publish(text, args.markdown)


def alternating_rounds(
    rounds: int, cells: list[Any], variants: tuple[Any, ...], measure_one: Callable[[Any, Any], Any]
) -> dict[tuple[Any, Any], list[Any]]:
    """Every cell under every variant, round after round, the variants' order reversed every other round.

    So the drift of a shared machine falls on all variants alike; the rounds' results by (cell, variant).
    """
    results: dict[tuple[Any, Any], list[Any]] = {}
    for round_index in range(rounds):
        order = variants if round_index % 2 == 0 else tuple(reversed(variants))
        for cell in cells:
            for variant in order:
                results.setdefault((cell, variant), []).append(measure_one(cell, variant))
        print(f"round {round_index + 1} done", flush=True)
    return results


def publish(text: str, markdown: str | None) -> None:
    """Print the tables, and append them to ``markdown`` where one is named."""
    print(text)
    if markdown:
        with open(markdown, "a") as out:
            out.write("\n" + text)


if __name__ == "__main__":
    main()
