"""Greenlet against thread workers on one embedded real Triton, by requests in flight per load process.

What the default worker kind rests on (``perfprobe.load.runtime.default_worker_kind``). Each
measurement is one ``perfprobe sweep`` command at one concurrency, ``--processes N``, with
``--workers`` set; the two kinds run back to back in an order that alternates round by round, and
the median of the rounds is reported. Throughput and in-window client CPU per request (load
processes plus coordinator) as ``processes.py`` measures them.

    python benchmarks/worker_kinds.py [--protocols http] [--cells 1x1,1x2,1x4,1x8,1x16,2x4,4x2,2x8,4x4]
        [--rounds 3] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Any

from processes import Measured, Windows, alternating_rounds, measure, publish

from perfprobe.server import EmbeddedServer

KINDS = ("greenlet", "thread")


def parse_cells(text: str) -> list[tuple[int, int]]:
    """'1x8,4x2' → [(1, 8), (4, 2)]: processes × requests in flight per process."""
    cells = []
    for cell in text.split(","):
        processes, _, per_process = cell.partition("x")
        cells.append((int(processes), int(per_process)))
    return cells


def table(results: dict[tuple[Any, Any], list[Measured]], cells: list[tuple[int, int]]) -> str:
    lines = [
        "| protocol | processes | in flight per process | concurrency | greenlet infer/s | thread infer/s "
        "| thread ÷ greenlet | greenlet CPU µs/req | thread CPU µs/req | thread ÷ greenlet |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for protocol in sorted({cell[0] for cell, _ in results}):
        for processes, per_process in cells:
            greenlet, thread = (results[((protocol, processes, per_process), kind)] for kind in KINDS)
            rate = [statistics.median(m.throughput for m in runs) for runs in (greenlet, thread)]
            cpu = [statistics.median(m.cpu_us_per_request for m in runs) for runs in (greenlet, thread)]
            lines.append(
                f"| {protocol} | {processes} | {per_process} | {processes * per_process} | {rate[0]:,.0f} "
                f"| {rate[1]:,.0f} | {rate[1] / rate[0]:.2f} | {cpu[0]:.1f} | {cpu[1]:.1f} | {cpu[1] / cpu[0]:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocols", default="http")
    parser.add_argument("--cells", default="1x1,1x2,1x4,1x8,1x16,2x4,4x2,2x8,4x4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window-ms", type=int, default=1500)
    parser.add_argument("--markdown", help="append the table to this file")
    args = parser.parse_args()
    cells = parse_cells(args.cells)
    started = time.monotonic()
    server = EmbeddedServer(pick_free_ports=True).start()

    def measure_one(cell: tuple[str, int, int], kind: str) -> Measured:
        protocol, processes, per_process = cell
        return measure(
            server, protocol, processes, processes * per_process, Windows(args.window_ms, workers=kind), None
        )

    try:
        every_cell = [(protocol, *cell) for protocol in args.protocols.split(",") for cell in cells]
        results = alternating_rounds(args.rounds, every_cell, KINDS, measure_one)
    finally:
        server.stop()
    text = (
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}; server and client share "
        f"it. Median of {args.rounds} alternating rounds, {args.window_ms} ms windows until stable.\n\n"
        + table(results, cells)
        + f"\n\nRun time: {time.monotonic() - started:.0f} s.\n"
    )
    publish(text, args.markdown)


if __name__ == "__main__":
    main()
