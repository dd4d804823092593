"""Wire vs system shared memory vs CUDA shared memory, across tensor sizes, as a library call.

One sweep per transport and size on one server (same load levels and window settings); the
matrix is built from the sweeps' own rows, a verdict per size says how much shared memory
gains over the wire, and a transport that cannot run here is listed as skipped with its reason.
"""

from __future__ import annotations

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
from perfprobe.load.dataset import with_described_inputs
from perfprobe.report import runfile
from perfprobe.report.results import LOAD_COLUMN
from perfprobe.runs.observer import RunObserver
from perfprobe.runs.options import SweepOptions
from perfprobe.runs.plan import plan
from perfprobe.runs.result import SweepResult
from perfprobe.runs.server_check import memory_missing
from perfprobe.runs.sweep import check_writable, connected, measure_sweep, report_safely
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
]


@dataclass
class CompareResult:
    """The transport × size matrix, the sweeps behind it, the verdicts and what was skipped."""

    model: str
    url: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    cells: dict[tuple[str, int], SweepResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    about: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    report_written: bool = False

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
        try:
            for size, shape_options in shapes_for(description, size_list, list(base.shape)):
                for transport in chosen:
                    if transport in result.skipped:
                        continue
                    cell_options = _cell_options(base, transport, size, shape_options, out_dir)
                    observer.section(f"{LABELS[transport]}, {human(size)}")
                    cell = _run_cell(cell_options, target, control, observer, abilities)
                    result.cells[(transport, size)] = cell
                    result.rows += cell_rows(cell, transport, size)
        except RunInterrupted as stopped:  # a cell kept what it measured before the signal
            if stopped.result is not None:
                result.rows += cell_rows(stopped.result, transport, size)
            result.interrupted = True
        except KeyboardInterrupt:  # outside a cell's measurement: nothing of that cell to keep
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


def _run_cell(
    options: SweepOptions, target: Target, control: InferenceClient, observer: RunObserver, abilities: ServerAbilities
) -> SweepResult:
    cell_plan = plan(options)
    if cell_plan.output_dir is not None:
        check_writable(cell_plan.output_dir)
    return measure_sweep(cell_plan, target, control, observer, abilities)


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


def cell_rows(cell: SweepResult, transport: str, size: int) -> list[dict[str, Any]]:
    """One matrix row per load level of a cell's sweep, from the sweep's own rows."""
    load = LOAD_COLUMN[cell.load_kind]
    return [
        {
            "Transport": LABELS[transport],
            "Tensor Bytes": size,
            "Load": row[load],
            **{name: row[name] for name in MATRIX_COLUMNS[3:]},
        }
        for row in cell.rows
    ]


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """Per size and shared-memory transport: its best speed-up over the wire at any shared load level."""
    lines = []
    wire = {(r["Tensor Bytes"], r["Load"]): r["Inferences/Second"] for r in rows if r["Transport"] == "wire"}
    for size in sorted({r["Tensor Bytes"] for r in rows}):
        for transport in [LABELS["system"], LABELS["cuda"]]:
            best = None
            for row in rows:
                base = wire.get((size, row["Load"]))
                if row["Transport"] == transport and row["Tensor Bytes"] == size and base:
                    ratio = row["Inferences/Second"] / base
                    if best is None or ratio > best[0]:
                        best = (ratio, row["Load"])
            if best:
                lines.append(f"{transport}: {best[0]:.1f}x the wire at {human(size)}, load level {best[1]}")
    return lines
