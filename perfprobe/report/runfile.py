"""The one owner of ``results.json`` (a sweep) and ``compare.json`` (a compare): write, read, upgrade.

The documents carry ``schema_version``; their ``settings`` use names of their own, not the
command-line options', so a renamed flag never changes how an old run is read, reported or
gated. Version 1 (perfprobe 0.1 before the schema had a number) kept the raw argparse
options under ``arguments``; reading it translates them into version 2's ``settings``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perfprobe.errors import ResultsNotWritten
from perfprobe.load.sweeper import LevelResult
from perfprobe.measure.window import WindowStats

SCHEMA_VERSION = 2


def new_document(settings: dict[str, Any], server: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """A sweep's document before its first level: what ran, where, with which settings.

    ``server``: its name, version, the extensions it listed, and those the run found it has.
    """
    from perfprobe import __version__

    return {
        "schema_version": SCHEMA_VERSION,
        "perfprobe_version": __version__,
        "server": server,
        "model": model,
        "settings": settings,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "levels": [],
    }


def finish(document: dict[str, Any]) -> None:
    document["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")


def level_entry(result: LevelResult, batch_size: int, windows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything measured at one level, per window, with encoded histograms.

    ``windows``: the window entries when the caller has them (a level of repeated runs keeps every
    run's windows, not only the pooled ones).
    """
    if windows is None:
        windows = window_entries(result, batch_size)
    reasons = result.merged().top_reasons() if result.windows else []
    shares = result.shares()
    return {
        "load_kind": result.load_kind,
        "level": result.level,
        "started_s": result.started_s,
        "finished_s": result.finished_s,
        "stable": result.stable,
        "warnings": result.warnings,
        "error_reasons": [{"code": code, "reason": reason, "count": count} for code, reason, count in reasons],
        "reported_windows": [w.stats.index for w in result.reported],
        "windows": windows,
        **({"server_unmeasured": result.server_unmeasured} if result.server_unmeasured else {}),
        **({"warmup": _unreported(result.warmup)} if result.warmup is not None else {}),
        **({"processes": [share.as_dict() for share in shares]} if shares else {}),
        **({"trace": result.trace} if result.trace is not None else {}),
    }


def window_entries(result: LevelResult, batch_size: int) -> list[dict[str, Any]]:
    """Each window the level measured, reported or not, as results.json keeps it."""
    windows = []
    for record in result.windows:
        stats = record.stats
        windows.append(
            {
                "index": stats.index,
                "duration_ns": stats.duration_ns,
                "completed": stats.completed,
                "errors": stats.errors,
                "throughput": stats.throughput(batch_size),
                "latency_us": stats.latency.summary(),
                "latency_histogram": stats.latency.encode(),
                "intended_histogram": stats.intended.encode() if stats.intended else None,
                "first_response_histogram": stats.first_response.encode() if stats.first_response else None,
                "between_responses_histogram": stats.between_responses.encode() if stats.between_responses else None,
                "recv_ns": stats.recv_ns,
                "responses": stats.responses,
                "late_sends": stats.late_sends,
                "max_lag_ns": stats.max_lag_ns,
                "resent": stats.resent,
                "dropped_late_answers": stats.dropped,
                "client_cpu_ns": record.cpu_ns,
                "drained": record.drained,
                "server": {name: delta.to_dict() for name, delta in record.server.items()},
                "metrics": record.metrics,
                **({"processes": [share.as_dict() for share in record.shares]} if record.shares else {}),
                **(_sequence_fields(stats) if stats.sequence_latency is not None or stats.sequences_failed else {}),
                **(_token_fields(stats) if stats.token_requests else {}),
            }
        )
    return windows


def repeated_entry(
    runs: list[LevelResult], pooled: LevelResult, rows: list[dict[str, Any]], batch_size: int
) -> dict[str, Any]:
    """A level measured in several runs: the pooled level's figures, every window of every run (each tagged
    with its ``run`` and whether it is ``reported``, i.e. pooled), and per run its times, stability,
    warnings and own row."""
    windows = []
    for number, run in enumerate(runs, 1):
        reported = {id(record) for record in run.reported}
        for record, window in zip(run.windows, window_entries(run, batch_size), strict=True):
            windows.append({**window, "run": number, "reported": id(record) in reported})
    entry = level_entry(pooled, batch_size, windows)
    entry["runs"] = [
        {
            "run": number,
            "started_s": run.started_s,
            "finished_s": run.finished_s,
            "stable": run.stable,
            "windows_measured": len(run.windows),
            "warnings": run.warnings,
            "row": row,
        }
        for number, (run, row) in enumerate(zip(runs, rows, strict=True), 1)
    ]
    return entry


def _unreported(stats: WindowStats) -> dict[str, Any]:
    """What the warm-up sent: in no window, yet served (a server's own count includes it)."""
    return {"completed": stats.completed, "errors": stats.errors}


def _token_fields(stats: WindowStats) -> dict[str, Any]:
    """A generated answer's window: its tokens, the requests that counted them, those within --goodput."""
    return {
        "output_tokens": stats.output_tokens,
        "token_requests": stats.token_requests,
        "good_requests": stats.good,
        "inter_token_histogram": stats.inter_token.encode() if stats.inter_token else None,
    }


def _sequence_fields(stats: WindowStats) -> dict[str, Any]:
    """A stateful model's window: sequences completed and failed, and their latency (first send to last response)."""
    latency = stats.sequence_latency
    return {
        "sequences_completed": stats.sequences_completed,
        "sequences_failed": stats.sequences_failed,
        "sequences_per_s": stats.sequence_rate(),
        "sequence_latency_us": latency.summary() if latency is not None else None,
        "sequence_latency_histogram": latency.encode() if latency is not None else None,
    }


def write(path: Path, document: dict[str, Any]) -> None:
    """Write atomically: a reader (or a crash) never sees half a document."""
    write_together({path: lambda to: write_plain(to, document)})


def write_plain(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=1, default=str))


def write_together(writers: dict[Path, Callable[[Path], None]]) -> None:
    """Write several files as one: each to a temporary beside it, then all renamed into place.

    A failure while writing (a full disk, a removed directory) leaves the earlier versions whole
    and consistent with one another, removes the temporaries, and is one ``ResultsNotWritten``.
    """
    staged: dict[Path, Path] = {}
    try:
        for path, write_to in writers.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            staged[path] = path.with_name(path.name + ".tmp")
            write_to(staged[path])
        for path, tmp in staged.items():
            tmp.replace(path)
    except OSError as exc:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
        where = next(iter(writers)).parent
        raise ResultsNotWritten(
            f"cannot write results to {where}: {exc.strerror or exc}; the files there hold the levels written before"
        ) from None


def read(path: Path) -> dict[str, Any]:
    """A sweep or compare document at the current schema version (older ones translated)."""
    return upgrade(json.loads(path.read_text()))


def compare_document(model: str, url: str | None, settings: dict[str, Any], transports: list[str]) -> dict[str, Any]:
    """What a compare run measured, for its report's titles (the matrix itself is compare.csv)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "url": url,
        "transports": transports,
        "settings": settings,
    }


def upgrade(document: dict[str, Any]) -> dict[str, Any]:
    version = document.get("schema_version", 1)
    if version > SCHEMA_VERSION:
        raise ValueError(f"written by a newer perfprobe (schema {version}; this one reads up to {SCHEMA_VERSION})")
    if version == 1:
        document = dict(document)
        document["settings"] = settings_from_options(document.pop("arguments", {}) or {})
        document["schema_version"] = SCHEMA_VERSION
    return document


def settings_from_options(options: dict[str, Any]) -> dict[str, Any]:
    """Version 1's raw option values, as version 2's settings."""
    percentile = options.get("percentile")
    window_ms = options.get("measurement_interval")
    load_kind = "rate" if options.get("request_rate") or options.get("request_intervals") else "concurrency"
    return {
        "model": options.get("model"),
        "url": options.get("url"),
        "embedded_server": bool(options.get("serve")),
        "protocol": options.get("protocol"),
        "mode": options.get("mode"),
        "worker_kind": options.get("workers"),
        "load_kind": load_kind,
        "levels": None,
        "level_spec": options.get("concurrency") if load_kind == "concurrency" else options.get("request_rate"),
        "distribution": options.get("distribution") if load_kind == "rate" else None,
        "batch_size": options.get("batch_size", 1),
        "shapes": options.get("shape") or [],
        "input_data": options.get("input_data"),
        "shared_memory": options.get("shared_memory", "none"),
        "window_mode": "count" if options.get("measurement_mode") == "count_windows" else "time",
        "window_ms": window_ms,
        "window_requests": options.get("measurement_request_count"),
        "stability_percentage": options.get("stability_percentage"),
        "stability_windows": options.get("stability_windows"),
        "stability_latency": f"p{percentile:g}" if percentile else "mean",
        "max_windows": options.get("max_trials"),
        "latency_threshold_ms": options.get("latency_threshold"),
        "binary_search": bool(options.get("binary_search")),
        "request_timeout_s": options.get("request_timeout"),
        "drain": not options.get("no_drain", False),
    }
