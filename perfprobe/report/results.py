"""A sweep's results as rows: perf_analyzer's ``-f`` CSV columns first, then perfprobe's own.

perf_analyzer's columns keep their names, order and units (integer microseconds), so
scripts written for its CSV read ours unchanged.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from perfprobe.load.sweeper import LevelResult

PA_COLUMNS = (
    "Inferences/Second",
    "Client Send",
    "Network+Server Send/Recv",
    "Server Queue",
    "Server Compute Input",
    "Server Compute Infer",
    "Server Compute Output",
    "Client Recv",
    "p50 latency",
    "p90 latency",
    "p95 latency",
    "p99 latency",
)
OWN_COLUMNS = (
    "p99.9 latency",
    "Avg latency",
    "Std latency",
    "Min latency",
    "Max latency",
    "Completed",
    "Errors",
    "Error Rate",
    "Avg Batch Size",
    "Server Success",
    "Intended p50 latency",
    "Intended p99 latency",
    "Late Sends",
    "Max Send Lag",
    "First Response p50",
    "Inter-Response p50",
    "Responses/Second",
    "Sequences/Second",
    "Sequence p50 latency",
    "Sequence p99 latency",
    "Sequences Failed",
    "Client CPU us/req",
    "Server CPU Util",
    "Stable",
    "Windows",
    "Warnings",
)
LOAD_COLUMN = {"concurrency": "Concurrency", "rate": "Request Rate"}


def columns(load_kind: str) -> list[str]:
    return [LOAD_COLUMN[load_kind], *PA_COLUMNS, *OWN_COLUMNS]


def level_row(result: LevelResult, batch_size: int, composing: list[str] | None = None) -> dict[str, Any]:
    """One CSV row (microsecond integers where perf_analyzer has them)."""
    merged = result.merged()
    lat = merged.latency.summary()
    completed = merged.completed
    server_models = composing or [result.target_model]
    queue = compute_in = compute_infer = compute_out = 0.0
    for name in server_models:
        delta = result.server(name)
        if delta is not None:
            queue += delta.average_us("queue")
            compute_in += delta.average_us("compute_input")
            compute_infer += delta.average_us("compute_infer")
            compute_out += delta.average_us("compute_output")
    target = result.server()
    client_recv = merged.recv_ns / completed / 1000 if completed else 0.0
    client_send = merged.send_ns / completed / 1000 if completed else 0.0
    server_total = queue + compute_in + compute_infer + compute_out
    network = max(merged.latency.mean_us - client_send - client_recv - server_total, 0.0) if completed else 0.0
    finished = completed + merged.error_count
    seconds = merged.duration_ns / 1e9 if merged.duration_ns else 0.0
    intended = merged.intended.summary() if merged.intended else {}
    first = merged.first_response.summary() if merged.first_response else {}
    between = merged.between_responses.summary() if merged.between_responses else {}
    sequences = merged.sequence_latency.summary() if merged.sequence_latency else {}
    stateful = merged.sequence_latency is not None or merged.sequences_failed > 0
    metric_values = result.metrics()
    level = int(result.level) if result.load_kind == "concurrency" else result.level
    return {
        LOAD_COLUMN[result.load_kind]: level,
        "Inferences/Second": round(merged.throughput(batch_size), 2),
        "Client Send": round(client_send),
        "Network+Server Send/Recv": round(network),
        "Server Queue": round(queue),
        "Server Compute Input": round(compute_in),
        "Server Compute Infer": round(compute_infer),
        "Server Compute Output": round(compute_out),
        "Client Recv": round(client_recv),
        "p50 latency": lat.get("p50", 0),
        "p90 latency": lat.get("p90", 0),
        "p95 latency": lat.get("p95", 0),
        "p99 latency": lat.get("p99", 0),
        "p99.9 latency": lat.get("p99.9", 0),
        "Avg latency": round(lat.get("mean", 0)),
        "Std latency": round(lat.get("std", 0)),
        "Min latency": lat.get("min", 0),
        "Max latency": lat.get("max", 0),
        "Completed": completed,
        "Errors": merged.error_count,
        "Error Rate": round(merged.error_count / finished, 6) if finished else 0.0,
        "Avg Batch Size": round(target.average_batch, 3) if target else "",
        "Server Success": target.success_count if target else "",
        "Intended p50 latency": intended.get("p50", ""),
        "Intended p99 latency": intended.get("p99", ""),
        "Late Sends": merged.late_sends if merged.intended else "",
        "Max Send Lag": round(merged.max_lag_ns / 1000) if merged.intended else "",
        "First Response p50": first.get("p50", ""),
        "Inter-Response p50": between.get("p50", ""),
        "Responses/Second": round(merged.responses / seconds, 2) if merged.first_response and seconds else "",
        "Sequences/Second": round(merged.sequence_rate(), 2) if stateful else "",
        "Sequence p50 latency": sequences.get("p50", ""),
        "Sequence p99 latency": sequences.get("p99", ""),
        "Sequences Failed": merged.sequences_failed if stateful else "",
        "Client CPU us/req": round(result.cpu_us_per_request(), 1),
        "Server CPU Util": round(metric_values["nv_cpu_utilization"], 4)
        if "nv_cpu_utilization" in metric_values
        else "",
        "Stable": "yes" if result.stable else "no",
        "Windows": len(result.windows),
        "Warnings": "; ".join(result.warnings),
    }


# a combined row of several models has no one server-side breakdown: each model's row has its own
_PER_MODEL_ONLY = (
    "Network+Server Send/Recv",
    "Server Queue",
    "Server Compute Input",
    "Server Compute Infer",
    "Server Compute Output",
    "Avg Batch Size",
)


def model_row(result: LevelResult, batch_size: int, composing: list[str] | None = None) -> dict[str, Any]:
    """One model's row of a run with several: its own figures, no client CPU (the models share a process)."""
    row = {"Model": result.target_model, **level_row(result, batch_size, composing)}
    row["Client CPU us/req"] = ""
    return row


def combined_row(row: dict[str, Any], model_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The level's row over every model: throughput and latency of all, server counts summed."""
    combined = dict(row)
    for column in _PER_MODEL_ONLY:
        combined[column] = ""
    counts = [r["Server Success"] for r in model_rows]
    combined["Server Success"] = sum(counts) if all(c != "" for c in counts) else ""
    return combined


def write_csv(path: Path, load_kind: str, rows: list[dict[str, Any]], by_model: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=(["Model"] if by_model else []) + columns(load_kind))
        writer.writeheader()
        writer.writerows(rows)
