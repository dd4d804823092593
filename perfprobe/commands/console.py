"""How sweep and compare show a run in the terminal: the live table, warnings, the summary."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from perfprobe.runs.observer import RunObserver, SweepStart

if TYPE_CHECKING:
    from perfprobe.load.sweeper import LevelResult, WindowRecord
    from perfprobe.runs.result import SweepResult

SEQUENCE_COLUMNS = ("Sequences/Second", "Sequence p50 latency", "Sequence p99 latency", "Sequences Failed")
TOKEN_COLUMNS = (
    "Time To First Token p50",
    "Time To First Token p99",
    "Inter Token Latency p50",
    "Output Tokens/Second",
)
LIVE_HEADER = f"{'level':>8} {'window':>6} {'infer/s':>10} {'p50 us':>9} {'p99 us':>9} {'errors':>6}  stable"


class ConsoleObserver(RunObserver):
    """Prints a run as it goes: progress on stdout, notes and warnings about the run on stderr."""

    def __init__(self) -> None:
        self._batch_size = 1

    def note(self, text: str) -> None:
        print(text if text.startswith("warning:") else f"note: {text}", file=sys.stderr, flush=True)

    def section(self, title: str) -> None:
        print(f"\n== {title} ==", flush=True)

    def started(self, start: SweepStart) -> None:
        self._batch_size = start.batch_size
        tensors = start.shared_memory.replace("none", "the wire")
        spread = f" in {start.processes} load processes" if start.processes > 1 else ""
        print(
            f"perfprobe sweep: {start.model} over {start.protocol} at {start.url}, mode {start.mode}, "
            f"{start.worker_kind} workers{spread}, tensors via {tensors}, {start.load_kind} {start.levels}",
            flush=True,
        )
        print(LIVE_HEADER, flush=True)

    def window(self, level: LevelResult, record: WindowRecord) -> None:
        summary = record.stats.latency.summary()
        print(
            f"{level.level:>8g} {len(level.windows):>6} {record.stats.throughput(self._batch_size):>10.1f} "
            f"{summary.get('p50', 0):>9} {summary.get('p99', 0):>9} {record.stats.error_count:>6}  "
            f"{'yes' if level.stable else 'no'}",
            flush=True,
        )

    def level_done(self, level: LevelResult) -> None:
        for warning in level.warnings:
            print(f"  warning: {warning}", flush=True)
        if not level.stable and level.windows:
            print(
                f"  unstable: level {level.level:g} gave up after {len(level.windows)} windows that never agreed; "
                f"its figures come from the last {len(level.reported)}, and may be noise",
                flush=True,
            )

    def decided(self, text: str) -> None:
        print(text, flush=True)

    def finished(self, result: SweepResult) -> None:
        from perfprobe.report.results import LOAD_COLUMN, has_intervals
        from perfprobe.report.text_table import format_table

        if result.interrupted:
            print("interrupted: results measured so far are written", file=sys.stderr, flush=True)
        key = LOAD_COLUMN[result.load_kind]
        rows = result.rows
        if result.parts:  # several models: each level's combined row, then each model's own
            count = len(result.parts)
            rows = [
                line
                for index, combined in enumerate(result.rows)
                for line in ({"Model": "all", **combined}, *result.model_rows[index * count : (index + 1) * count])
            ]
        table = [
            [
                str(r[key]),
                f"{r['Inferences/Second']:.1f}",
                str(r["p50 latency"]),
                str(r["p99 latency"]),
                str(r["Errors"]),
                r["Stable"],
            ]
            for r in rows
        ]
        headers = [key.lower(), "infer/s", "p50 us", "p99 us", "errors", "stable"]
        if result.parts:
            headers.insert(0, "model")
            for line, r in zip(table, rows, strict=True):
                line.insert(0, r["Model"])
        if any(r["Sequences/Second"] != "" for r in rows):  # a stateful model: its sequences too
            headers += ["seq/s", "seq p50 us", "seq p99 us", "seq failed"]
            for line, r in zip(table, rows, strict=True):
                line += [str(r[name]) for name in SEQUENCE_COLUMNS]
        if any(r["Output Tokens/Second"] != "" for r in rows):  # a generative model: its token figures too
            headers += ["ttft p50 us", "ttft p99 us", "itl p50 us", "tokens/s"]
            for line, r in zip(table, rows, strict=True):
                line += [str(r[name]) if r[name] != "" else "-" for name in TOKEN_COLUMNS]
        if has_intervals(rows):  # repeated runs: the 95% intervals of the two figures shown first
            headers += ["infer/s 95% CI", "p99 95% CI us"]
            for line, r in zip(table, rows, strict=True):
                line += [_span(r, "Inferences/Second"), _span(r, "p99 latency")]
        print()
        print(format_table(headers, table))
        if result.output_dir is not None:
            print(f"\nresults: {result.output_dir / 'results.csv'} and results.json", flush=True)
        if result.report_written:
            print(f"report: {result.output_dir / 'summary.md'}, report.html, charts/", flush=True)


def _span(row: dict, column: str) -> str:
    """A figure's 95% interval over repeated runs as ``low–high`` ("-" where it has none)."""
    from perfprobe.report.figures import interval_in

    found = interval_in(row, column)
    return f"{found[0]:g}–{found[1]:g}" if found else "-"
