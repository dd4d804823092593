"""Wire vs system shared memory vs CUDA shared memory, across tensor sizes, as a library call.

One sweep per transport and size on one server (same load levels and window settings); the
matrix is built from the sweeps' own rows, a verdict per size says how much shared memory
gains over the wire, and a transport that cannot run here is listed as skipped with its reason.
"""

from __future__ import annotations

import contextlib
import copy
import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from perfprobe.client import InferenceClient
from perfprobe.client.abilities import ServerAbilities, learn
from perfprobe.client.model import ModelDescription
from perfprobe.errors import RunInterrupted, UsageError
from perfprobe.interrupts import shielded
from perfprobe.load.dataset import with_described_inputs
from perfprobe.report import runfile
from perfprobe.report.figures import interval_columns, interval_in
from perfprobe.report.results import LOAD_COLUMN
from perfprobe.report.rundata import level_label
from perfprobe.runs.observer import RunObserver
from perfprobe.runs.options import SweepOptions
from perfprobe.runs.plan import plan
from perfprobe.runs.result import SweepResult
from perfprobe.runs.server_check import memory_missing
from perfprobe.runs.sweep import SweepSession, check_writable, connected, report_safely, sweep_session
from perfprobe.runs.target import Target
from perfprobe.units import human, parse_size

TRANSPORTS = ("none", "system", "cuda")
LABELS = {"none": "wire", "system": "system shm", "cuda": "CUDA shm"}
DEFAULT_SIZES = ("64KiB", "1MiB", "4MiB", "16MiB")
MATRIX_COLUMNS = [
    "Transport",
    "Tensor Bytes",
    "Load",
    "Inferences/Second",
    "p50 latency",
    "p99 latency",
    "Server Compute Input",
    "Server Compute Output",
    "Errors",
    "Stable",
    "Runs",
    "Inferences/Second CI low",
    "Inferences/Second CI high",
    "Speed-up",  # a shared-memory row: its throughput over the wire's at the same size and load level
    "Speed-up CI low",
    "Speed-up CI high",
]
FROM_SWEEP = MATRIX_COLUMNS[3:10]  # the cells' own figures; the rest the matrix works out


@dataclass
class CompareResult:
    """The transport × size matrix, the sweeps behind it, the verdicts and what was skipped."""

    model: str
    url: str
    cells: dict[tuple[str, int], SweepResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    about: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    report_written: bool = False

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The matrix rows, size by size in the order measured, worked out from the cells whenever asked: an
        interrupt at any step of a cell cannot leave a measured level out of ``compare.csv``."""
        sizes = dict.fromkeys(size for _, size in self.cells)
        return [
            row
            for size in sizes
            for row in size_rows({t: cell for (t, s), cell in self.cells.items() if s == size}, size)
        ]

    @property
    def table(self) -> pd.DataFrame:
        """One row per transport, size and load level: ``compare.csv`` without its skipped rows."""
        return pd.DataFrame(self.rows, columns=MATRIX_COLUMNS)

    @property
    def verdicts(self) -> list[str]:
        return verdicts(self.rows) + [f"{LABELS[t]}: skipped ({reason})" for t, reason in self.skipped.items()]

    def save(self, directory: str | Path, report: bool = False) -> Path:
        """``compare.csv``, ``compare.json``, ``verdict.txt`` (the cells' own files are written as they run)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        with (path / "compare.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[*MATRIX_COLUMNS, "Skipped"])
            writer.writeheader()
            writer.writerows(self.rows)
            for transport, reason in self.skipped.items():
                writer.writerow({"Transport": LABELS[transport], "Skipped": reason})
        runfile.write(path / "compare.json", self.about)
        (path / "verdict.txt").write_text("\n".join(self.verdicts) + "\n")
        if report and self.rows:
            from perfprobe.report.build import write_report

            write_report(path)
        return path


def parse_transports(text: str | list[str] | tuple[str, ...]) -> list[str]:
    chosen = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    unknown = set(chosen) - set(TRANSPORTS)
    if unknown or not chosen:
        raise UsageError(f"--transports: expected some of {', '.join(TRANSPORTS)}, got {text!r}")
    return chosen


def compare(
    model: str | None = None,
    *,
    transports: str | list[str] = TRANSPORTS,
    sizes: str | list[str] = DEFAULT_SIZES,
    observer: RunObserver | None = None,
    **options: Any,
) -> CompareResult:
    """Sweep ``model`` once per transport and tensor size; keyword names follow ``perfprobe compare``'s options.

    With ``output_dir``, each cell's sweep and the matrix are written there as they finish.
    """
    observer = observer or RunObserver()
    chosen = parse_transports(transports)
    size_list = [parse_size(s) for s in (sizes.split(",") if isinstance(sizes, str) else sizes) if str(s).strip()]
    base = SweepOptions.from_keywords({"model": model, **options})
    base_plan = plan(base)  # every option checked before the server starts
    if base_plan.several:
        raise UsageError("compare measures one model's transports: give -m once")
    if base_plan.endpoint != "infer":
        raise UsageError(
            f"compare sets tensors on the wire against shared memory; --endpoint {base_plan.endpoint} sends JSON "
            "(measure it with perfprobe sweep)"
        )
    if base.history:
        raise UsageError("--history keeps sweeps: add a compare's cells with perfprobe history add DIR/CELL")
    if base_plan.binary_search:
        raise UsageError("compare measures every level of each cell in turn; --binary-search is perfprobe sweep's")
    out_dir = base_plan.output_dir
    if out_dir is not None:
        check_writable(out_dir)
    with connected(base_plan) as (target, control):
        described = control.describe_model(base_plan.model)
        description, _ = with_described_inputs(described, base_plan.data)  # each cell's sweep says it
        result = CompareResult(description.name, target.url)
        settings = base_plan.recorded(target)
        result.about = runfile.compare_document(description.name, settings["url"], settings, chosen)
        abilities = learn(control, described.name, described.config_known)
        _skip_missing_memory(chosen, abilities, result)
        _skip_missing_cuda(chosen, base.cuda_device, result)
        cells = [transport for transport in chosen if transport not in result.skipped]
        try:
            for size, shape_options in shapes_for(description, size_list, list(base.shape)):
                options = {
                    transport: _cell_options(base, transport, size, shape_options, out_dir) for transport in cells
                }
                _measure_size(options, size, base_plan.levels, (target, control, abilities), observer, result)
        except KeyboardInterrupt:  # the cells measured so far are in the result
            result.interrupted = True
    if out_dir is not None:
        result.save(out_dir)
        if base_plan.report and result.rows:
            from perfprobe.report.build import write_report

            result.report_written = report_safely(lambda: write_report(out_dir), out_dir, observer)
    if result.interrupted:
        raise RunInterrupted("interrupted: the cells measured so far are kept", result)
    return result


def _skip_missing_memory(transports: list[str], abilities: ServerAbilities, result: CompareResult) -> None:
    """Shared-memory cells the server has no extension for: skipped, and the matrix says why in one line."""
    for transport in transports:
        missing = memory_missing(transport, abilities)
        if missing:
            result.skipped[transport] = missing


def _skip_missing_cuda(transports: list[str], device: int, result: CompareResult) -> None:
    if "cuda" not in transports or "cuda" in result.skipped:
        return
    from perfprobe.shm import cuda

    try:
        cuda.require_device(device)
    except cuda.CudaUnavailable as exc:
        result.skipped["cuda"] = str(exc)


def _cell_options(
    base: SweepOptions, transport: str, size: int, shape_options: list[str], out_dir: Path | None
) -> SweepOptions:
    cell = copy.copy(base)
    cell.shared_memory = transport
    cell.shape = shape_options
    cell.output_dir = str(out_dir / f"{transport}-{size}") if out_dir is not None else None
    cell.no_report = True  # one report for the whole matrix, at the end
    cell.csv = None
    cell.serve = False  # the compare's server is already there
    if transport != "none":
        if not base.output_shared_memory_size:
            cell.output_shared_memory_size = max(size, 4096)
        # its tensors are in shared memory: the request carries none, in JSON or otherwise
        cell.input_tensor_format = cell.output_tensor_format = "binary"
    return cell


def _measure_size(
    options: dict[str, SweepOptions],
    size: int,
    levels: list[float],
    server: tuple[Target, InferenceClient, ServerAbilities],
    observer: RunObserver,
    result: CompareResult,
) -> None:
    """Every cell of one tensor size, each in turn at each level (A1 B1 A2 B2 with --repeats), so drift over
    the run reaches all cells alike; their rows join the matrix even when an interrupt ends it early."""
    target, control, abilities = server
    plans = {transport: plan(cell) for transport, cell in options.items()}
    for cell_plan in plans.values():
        if cell_plan.output_dir is not None:
            check_writable(cell_plan.output_dir)
    with contextlib.ExitStack() as stack:
        sessions = {
            transport: stack.enter_context(sweep_session(cell_plan, target, control, observer, abilities))
            for transport, cell_plan in plans.items()
        }
        for transport, session in sessions.items():
            result.cells[(transport, size)] = session.begin()  # in the matrix from the start, filled as measured
        try:
            _in_turn(sessions, size, levels, observer)
        except KeyboardInterrupt:
            for session in sessions.values():
                session.result.interrupted = True
            raise
        finally:
            # a Ctrl-C while the cells' files are written waits for them; forcing out here would skip the
            # release of the cells' shared memory after it
            with shielded(lambda: [], force_after=None) as shield:
                for session in sessions.values():
                    with shield.step():
                        session.save()
        for session in sessions.values():
            session.close()
            session.judge()


def _in_turn(sessions: dict[str, SweepSession], size: int, levels: list[float], observer: RunObserver) -> None:
    """Each run, each level, each cell: a cell whose latency passed --latency-threshold measures no higher level."""
    stopped: set[str] = set()
    repeats = next(iter(sessions.values())).plan.repeats
    for number in range(1, repeats + 1):
        run = f", run {number} of {repeats}" if repeats > 1 else ""
        for position, level in enumerate(levels):
            for transport, session in sessions.items():
                measured = position < len(session.result.runs)  # its first run (not stopped below this level)
                if (number == 1 and transport in stopped) or (number > 1 and not measured):
                    continue
                label = level_label(session.plan.load_kind, level)
                observer.section(f"{LABELS[transport]}, {human(size)}, {label}{run}")
                if number > 1:
                    session.measure_again(position)
                elif session.passed_limit(session.measure_first(level)):
                    stopped.add(transport)


def shapes_for(model: ModelDescription, sizes: list[int], shape_options: list[str]) -> list[tuple[int, list[str]]]:
    """(tensor bytes, --shape options) per size; a fixed-shape model is measured at its own size."""
    import numpy as np

    from perfprobe.client.datatypes import element_size

    variable = [spec for spec in model.inputs if spec.is_variable]
    if not variable:
        total = sum(int(np.prod(s.shape)) * element_size(s.datatype) for s in model.inputs)
        return [(total, list(shape_options))]
    if len(variable) != 1 or sum(1 for d in variable[0].shape if d < 0) != 1 or variable[0].datatype == "BYTES":
        raise UsageError("compare sizes one input with one variable dimension; give --shape for the others")
    spec = variable[0]
    fixed = int(np.prod([d for d in spec.shape if d > 0])) if len(spec.shape) > 1 else 1
    per_element = element_size(spec.datatype) * fixed
    result = []
    for size in sizes:
        count = max(size // per_element, 1)
        dims = ",".join(str(count if d < 0 else d) for d in spec.shape)
        result.append((count * per_element, [*shape_options, f"{spec.name}:{dims}"]))
    return result


def size_rows(cells: dict[str, SweepResult], size: int) -> list[dict[str, Any]]:
    """The matrix rows of one size: each cell's levels, a shared-memory cell's with its speed-up over the wire.

    The speed-up is at the same level; with several runs, the mean of the paired runs' ratios (each run
    of a cell beside the wire's run measured just before it) and its 95% t-interval.
    """
    wire = cells.get("none")
    wire_at = {first[0].level: position for position, first in enumerate(wire.runs)} if wire else {}
    rows = []
    for transport, cell in cells.items():
        load = LOAD_COLUMN[cell.load_kind]
        for position, row in enumerate(cell.rows):
            matrix_row = {
                "Transport": LABELS[transport],
                "Tensor Bytes": size,
                "Load": row[load],
                **{name: row[name] for name in FROM_SWEEP},
                "Runs": len(cell.runs[position]),
                **{name: row.get(name, "") for name in interval_columns("Inferences/Second")},
            }
            level = cell.runs[position][0].level
            if transport != "none" and wire is not None and level in wire_at:
                matrix_row.update(_speed_up(cell, position, wire, wire_at[level]))
            rows.append(matrix_row)
    return rows


def _speed_up(cell: SweepResult, position: int, wire: SweepResult, wire_position: int) -> dict[str, Any]:
    """A shared-memory level's throughput over the wire's, with the interval of the paired runs' ratios."""
    from perfprobe.measure.intervals import ratio_interval

    mine = [float(value or 0) for value in cell.run_values(position, "Inferences/Second")]
    theirs = [float(value or 0) for value in wire.run_values(wire_position, "Inferences/Second")]
    pairs = min(len(mine), len(theirs))
    found = ratio_interval(mine[:pairs], theirs[:pairs])
    if found is not None:
        return {
            "Speed-up": round(found.point, 4),
            "Speed-up CI low": round(found.low, 4),
            "Speed-up CI high": round(found.high, 4),
        }
    # one pair of runs (one run each, or an interrupt left a cell a run short): that pair's own ratio, never
    # one cell's run over the other's mean of several
    ratios = [a / b for a, b in zip(mine, theirs, strict=False) if b]
    return {"Speed-up": round(ratios[0], 4) if ratios else ""}


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """Per size, shared-memory transport and load level: its speed-up over the wire at that level, and
    whether the runs show a clear difference (the same figures the compare chart draws)."""
    lines = []
    for row in rows:
        if row.get("Speed-up") in ("", None):
            continue
        lines.append(verdict_line(row))
    return lines


def verdict_line(row: dict[str, Any]) -> str:
    """``system shm is 1.21x the wire at 64 KiB, load 1 (95% CI 0.93-1.48: not a clear difference)``."""
    size = human(int(row["Tensor Bytes"]))
    said = f"{row['Transport']} is {float(row['Speed-up']):.2f}x the wire at {size}, load {row['Load']}"
    found = interval_in(row, "Speed-up")
    if found is None:
        return f"{said} (one run: no interval; --repeats 3 or more gives one)"
    low, high = float(found[0]), float(found[1])
    meaning = "faster" if low > 1 else "slower" if high < 1 else "not a clear difference"
    return f"{said} (95% CI {low:.2f}-{high:.2f} over {row['Runs']} runs: {meaning})"
