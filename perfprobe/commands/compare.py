"""``perfprobe compare``: wire vs system shared memory vs CUDA shared memory, across tensor sizes.

Runs one sweep per transport and size (same load levels and window settings), then writes
one CSV of the matrix, a chart, and a verdict line per size. A transport that cannot run
here is listed as skipped, with its reason.
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
import time
from pathlib import Path
from typing import Any

from perfprobe import exitcodes
from perfprobe.commands.common import add_connection_options, parse_headers, recorded_arguments
from perfprobe.errors import UsageError
from perfprobe.units import human, parse_size

TRANSPORTS = ("none", "system", "cuda")
LABELS = {"none": "wire", "system": "system shm", "cuda": "CUDA shm"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from perfprobe.commands import sweep_options

    parser = subparsers.add_parser(
        "compare",
        help="compare wire, system shm and CUDA shm across tensor sizes",
        description="One sweep per transport and size; one CSV, one chart, one verdict per size.",
    )
    add_connection_options(parser)
    sweep_options.add_options(parser)
    parser.add_argument(
        "--transports",
        default="none,system,cuda",
        help="comma-separated: none (the wire), system, cuda (default all three)",
    )
    parser.add_argument(
        "--sizes",
        default="64KiB,1MiB,4MiB,16MiB",
        help="tensor sizes for a model with one variable dimension (ignored for fixed shapes)",
    )
    parser.set_defaults(run=run, subparser=parser)


def run(args: argparse.Namespace) -> int:
    from perfprobe.interrupts import sigterm_as_interrupt

    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    unknown = set(transports) - set(TRANSPORTS)
    if unknown or not transports:
        raise UsageError(f"--transports: expected some of {', '.join(TRANSPORTS)}, got {args.transports!r}")
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    if not args.model:
        raise UsageError("the following arguments are required: -m/--model")
    with sigterm_as_interrupt():
        return _compare(args, transports, sizes)


def _compare(args: argparse.Namespace, transports: list[str], sizes: list[int]) -> int:
    from perfprobe.client import make_client
    from perfprobe.client.factory import DEFAULT_URLS, timeout_options

    server = None
    url = args.url or DEFAULT_URLS[args.protocol]
    if args.serve:
        from perfprobe.server import EmbeddedServer

        server = EmbeddedServer(model_repositories=args.serve_models, pick_free_ports=True).start()
        url = server.url(args.protocol)
    try:
        bounded = timeout_options(args.protocol, args.request_timeout)
        with make_client(args.protocol, url, headers=parse_headers(args.header), **bounded) as control:
            model = control.describe_model(args.model)
            shapes = _shapes_for(model, sizes, args.shape)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            out_dir = Path(args.output_dir or Path("reports") / f"{stamp}-compare-{model.name}")
            rows, skipped, interrupted = _matrix(args, url, control, transports, shapes, out_dir, server)
    finally:
        if server is not None:
            server.stop()
    if interrupted:
        print("interrupted: the cells measured so far are written", file=sys.stderr, flush=True)
    _write_matrix(out_dir / "compare.csv", rows, skipped)
    _write_about(out_dir / "compare.json", args, model.name, url)
    verdicts = _verdicts(rows) + [f"{LABELS[t]}: skipped ({reason})" for t, reason in skipped.items()]
    for line in verdicts:
        print(line)
    (out_dir / "verdict.txt").write_text("\n".join(verdicts) + "\n")
    print(f"\nresults: {out_dir / 'compare.csv'}, verdict.txt", flush=True)
    if not args.no_report and rows:
        from perfprobe.commands.report import write_report_safely

        write_report_safely(out_dir, None)
    return exitcodes.INTERRUPTED if interrupted else exitcodes.OK


def _shapes_for(model: Any, sizes: list[int], shape_options: list[str]) -> list[tuple[int, list[str]]]:
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


def _matrix(
    args, url, control, transports, shapes, out_dir, server
) -> tuple[list[dict[str, Any]], dict[str, str], bool]:
    """Every cell's rows, the transports skipped, and whether Ctrl-C / SIGTERM cut the matrix short."""
    from perfprobe.commands.sweep import _sweep
    from perfprobe.commands.sweep_options import default_metrics_url, plan_from_args

    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    if "cuda" in transports:
        from perfprobe.shm import cuda

        try:
            cuda.require_device(args.cuda_device)
        except cuda.CudaUnavailable as exc:
            skipped["cuda"] = str(exc)
    for size, shape_options in shapes:
        for transport in transports:
            if transport in skipped:
                continue
            run_args = copy.copy(args)
            run_args.shared_memory = transport
            run_args.shape = shape_options
            run_args.output_dir = str(out_dir / f"{transport}-{size}")
            run_args.no_report = True  # one report for the whole matrix, at the end
            if transport != "none" and not args.output_shared_memory_size:
                run_args.output_shared_memory_size = max(size, 4096)
            plan = plan_from_args(run_args)
            plan.metrics_url = plan.metrics_url or (server.metrics_url if server else default_metrics_url(url))
            print(f"\n== {LABELS[transport]}, {human(size)} ==", flush=True)
            try:
                code = _sweep(plan, url, control, parse_headers(args.header))
            except KeyboardInterrupt:  # outside the cell's measurement: nothing of this cell to keep
                return rows, skipped, True
            cell = out_dir / f"{transport}-{size}" / "results.csv"
            if cell.is_file():
                rows += _cell_rows(cell, transport, size)
            if code == exitcodes.INTERRUPTED:  # the cell kept what it measured before the signal
                return rows, skipped, True
    return rows, skipped, False


def _cell_rows(path: Path, transport: str, size: int) -> list[dict[str, Any]]:
    """One compare row per load level of a cell's sweep."""
    rows = []
    with path.open() as handle:
        for row in csv.DictReader(handle):
            rows.append(
                {
                    "Transport": LABELS[transport],
                    "Tensor Bytes": size,
                    "Load": row.get("Concurrency") or row.get("Request Rate"),
                    "Inferences/Second": float(row["Inferences/Second"]),
                    "p50 latency": int(row["p50 latency"]),
                    "p99 latency": int(row["p99 latency"]),
                    "Server Compute Input": int(row["Server Compute Input"]),
                    "Server Compute Output": int(row["Server Compute Output"]),
                    "Errors": int(row["Errors"]),
                    "Stable": row["Stable"],
                }
            )
    return rows


def _write_matrix(path: Path, rows: list[dict[str, Any]], skipped: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = [
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
        "Skipped",
    ]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        for transport, reason in skipped.items():
            writer.writerow({"Transport": LABELS[transport], "Skipped": reason})


def _write_about(path: Path, args: argparse.Namespace, model: str, url: str) -> None:
    """What was compared, for the report's titles (the matrix itself is in compare.csv)."""
    import json

    about = {"model": model, "url": url, "arguments": recorded_arguments(args)}
    path.write_text(json.dumps(about, indent=1, default=str))


def _verdicts(rows: list[dict[str, Any]]) -> list[str]:
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


__all__ = ["add_parser", "run"]
