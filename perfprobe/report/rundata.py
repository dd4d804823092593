"""A finished run read back from its directory: the levels table, per-window figures, histograms.

A sweep run directory holds ``results.csv`` (one row per load level) and ``results.json``
(everything per window, with encoded HDR histograms). A compare run directory holds
``compare.csv`` plus one sweep run per transport and size. Reports, diffs and gates all
start here, so they agree on what a run says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from perfprobe import exitcodes
from perfprobe.errors import PerfprobeError
from perfprobe.measure.histogram import LatencyHistogram
from perfprobe.report import runfile

SHORT_KIND = {"concurrency": "c", "rate": "rate"}


class RunNotFound(PerfprobeError):
    """The directory given is not a perfprobe run (missing or unreadable results)."""

    exit_code = exitcodes.NO_RESULTS


def level_label(load_kind: str, level: float) -> str:
    """``c=8`` or ``rate=100``: how levels are named in charts, tables, gate scopes and errors."""
    return f"{SHORT_KIND[load_kind]}={level:g}"


@dataclass
class Level:
    """One load level of a sweep: its CSV row and the windows behind it."""

    load_kind: str
    level: float
    row: dict[str, Any]
    windows: list[dict[str, Any]]
    reported_indexes: list[int]
    stable: bool
    warnings: list[str] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # several models: each one's entry
    server_unmeasured: str = ""  # why the level has no server-side figures ("" when it has them)
    runs: list[dict[str, Any]] = field(default_factory=list)  # measured in several runs (--repeats): each one's

    @property
    def repeated(self) -> bool:
        return len(self.runs) > 1

    def run_levels(self) -> list[Level]:
        """Each run of a level measured in several (``--repeats``), as a level of its own (its row and windows);
        the level itself when it was measured once."""
        if not self.repeated:
            return [self]
        return [
            Level(
                self.load_kind,
                self.level,
                run.get("row", {}),
                [window for window in self.windows if window.get("run") == run["run"]],
                [],
                bool(run.get("stable")),
                list(run.get("warnings", [])),
                server_unmeasured=self.server_unmeasured,
            )
            for run in self.runs
        ]

    @property
    def has_latency(self) -> bool:
        """At least one request succeeded: a level where all failed has no latency at all."""
        try:
            return int(self.row.get("Completed") or 0) > 0
        except (TypeError, ValueError):
            return False

    @property
    def label(self) -> str:
        return level_label(self.load_kind, self.level)

    @property
    def reported(self) -> list[dict[str, Any]]:
        """The windows the level's figures come from (the last K measured, whether or not they agreed; after
        repeated runs, those its windows say were pooled)."""
        if any("reported" in window for window in self.windows):
            return [window for window in self.windows if window["reported"]]
        wanted = set(self.reported_indexes)
        chosen = [w for w in self.windows if w["index"] in wanted]
        return chosen or self.windows

    @cached_property
    def histogram(self) -> LatencyHistogram:
        """End-to-end latency of the reported windows, merged."""
        merged = LatencyHistogram()
        for window in self.reported:
            merged.merge(LatencyHistogram.decode(window["latency_histogram"]))
        return merged

    def window_histograms(self) -> list[LatencyHistogram]:
        return [LatencyHistogram.decode(w["latency_histogram"]) for w in self.reported]


@dataclass
class SweepRun:
    """A sweep's results directory, loaded."""

    path: Path
    document: dict[str, Any]
    table: pd.DataFrame
    levels: list[Level]
    part_of: str | None = None  # one model's part of a run with several: that model's name

    def has_values(self, column: str) -> bool:
        """Whether any level has a value in ``column`` (a run without tokens has no token figures)."""
        return any(level.row.get(column, "") not in ("", None) for level in self.levels)

    @property
    def model_names(self) -> list[str]:
        """With several models loaded at once, their names (first the swept one); else empty."""
        models = self.settings.get("models") or []
        return [str(part["name"]) for part in models] if self.part_of is None else []

    def for_model(self, name: str) -> SweepRun:
        """One model's part of a run with several, read as a run of its own.

        Its levels keep the sweep's level (``c=8`` is where the sweep was, whatever this model's own
        fixed load), so a gate ``p99@model=A@c=8`` means "A, while the sweep ran at c=8".
        """
        if name not in self.model_names:
            known = ", ".join(self.model_names) or "none: this run loaded one model"
            raise KeyError(f"model {name!r} was not loaded in this run ({known})")
        levels, rows = [], []
        for level in self.levels:
            entry = level.models.get(name)
            if entry is None:
                break
            rows.append(entry["row"])
            levels.append(_level(entry, level.load_kind, level.level, entry["row"]))
        document = {**self.document, "model": {"name": name}}
        table = pd.DataFrame(rows)
        return SweepRun(self.path, document, table, levels, part_of=name)

    def unstable_note(self, role: str) -> str | None:
        """A line saying which levels never stabilised (their figures may be noise), or None when all did."""
        unstable = [level.label for level in self.levels if not level.stable]
        if not unstable:
            return None
        return (
            f"note: {role} ({self.name}) did not stabilise at {', '.join(unstable)}: "
            "its windows there disagreed by more than the stability percentage, so a change there may be noise"
        )

    @property
    def load_kind(self) -> str:
        return self.levels[0].load_kind if self.levels else "concurrency"

    @property
    def model(self) -> str:
        return str(self.document.get("model", {}).get("name", "?"))

    @property
    def settings(self) -> dict[str, Any]:
        """What the run was given, by results.json's own names (see ``perfprobe.report.runfile``)."""
        return self.document.get("settings", {})

    @property
    def server(self) -> str:
        server = self.document.get("server", {})
        return f"{server.get('name', 'server')} {server.get('version', '')}".strip()

    @property
    def title(self) -> str:
        """What was run, for chart titles: model, protocol, mode, tensors' transport."""
        settings = self.settings
        parts = [
            " + ".join(self.model_names) or self.model,
            f"over {settings.get('protocol', '?')}",
            f"{settings.get('mode', '?')} mode",
        ]
        if settings.get("shared_memory") not in (None, "none"):
            parts.append(f"{settings['shared_memory']} shm")
        json_sides = [side for side, shown in (settings.get("tensor_format") or {}).items() if shown == "json"]
        if json_sides:
            parts.append("JSON " + " and ".join(f"{side}s" for side in json_sides))
        if settings.get("batch_size", 1) != 1:
            parts.append(f"batch {settings['batch_size']}")
        return ", ".join(parts)

    @property
    def name(self) -> str:
        return self.part_of or self.path.name

    @property
    def protocol(self) -> str:
        return str(self.settings.get("protocol", "?"))

    def level(self, value: float, load_kind: str | None = None) -> Level | None:
        """The level measured at ``value`` (of ``load_kind`` when given), or None."""
        for level in self.levels:
            if level.level == value and load_kind in (None, level.load_kind):
                return level
        return None


@dataclass
class CompareRun:
    """A ``perfprobe compare`` directory: the transport × size matrix and its sweeps."""

    path: Path
    table: pd.DataFrame
    skipped: dict[str, str]
    verdicts: list[str]
    about: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def title(self) -> str:
        settings = self.about.get("settings", {})
        model = self.about.get("model", "?")
        load = settings.get("level_spec") or "?"
        return f"{model} over {settings.get('protocol', '?')}, {settings.get('mode', '?')} mode, load {load}"


def load_run(path: str | Path) -> SweepRun | CompareRun:
    """A sweep or compare run from its directory; RunNotFound when it is neither."""
    directory = Path(path)
    if (directory / "compare.csv").is_file():
        return load_compare(directory)
    return load_sweep(directory)


def load_sweep(path: str | Path) -> SweepRun:
    directory = Path(path)
    if not directory.is_dir():
        raise RunNotFound(f"{directory}: no such run directory")
    json_path, csv_path = directory / "results.json", directory / "results.csv"
    if not json_path.is_file() or not csv_path.is_file():
        raise RunNotFound(f"{directory}: not a perfprobe run (results.json and results.csv expected)")
    try:
        document = runfile.read(json_path)
        table = pd.read_csv(csv_path, keep_default_na=False)
        _check_document(document)
    except (ValueError, OSError, TypeError, KeyError, AttributeError) as exc:
        raise RunNotFound(f"{directory}: unreadable results: {exc}") from None
    levels = []
    for position, entry in enumerate(document.get("levels", [])):
        if position >= len(table):
            break  # interrupted between the JSON and the CSV write: keep what both have
        row = table.iloc[position].to_dict()
        levels.append(_level(entry, entry["load_kind"], float(entry["level"]), row))
    return SweepRun(directory, document, table.iloc[: len(levels)], levels)


def _check_document(document: Any) -> None:
    """A results.json whose shape the readers below rely on; ValueError naming the first thing wrong.

    Every window's histograms are decoded once here, so a corrupt one is found before a report is half drawn.
    """
    if not isinstance(document, dict) or not isinstance(document.get("levels", []), list):
        raise ValueError("results.json is not a sweep's document (an object with a list of levels)")
    for number, entry in enumerate(document.get("levels", [])):
        where = f"level {number}"
        if not isinstance(entry, dict) or entry.get("load_kind") not in SHORT_KIND:
            raise ValueError(f"{where}: not a level (load_kind concurrency or rate)")
        float(entry["level"])
        windows = entry.get("windows", [])
        if not isinstance(windows, list) or not isinstance(entry.get("reported_windows", []), list):
            raise ValueError(f"{where}: windows must be a list")
        for window in windows:
            if not isinstance(window, dict) or not isinstance(window.get("errors", {}), dict):
                raise ValueError(f"{where}: a window is not an object with errors by code")
            int(window["index"]), int(window["completed"])  # noqa: B018 (checked for their type)
            for key in ("latency_histogram", "intended_histogram", "first_response_histogram"):
                if window.get(key) is not None:
                    LatencyHistogram.decode(window[key])


def _level(entry: dict[str, Any], load_kind: str, value: float, row: dict[str, Any]) -> Level:
    return Level(
        load_kind=load_kind,
        level=value,
        row=row,
        windows=entry.get("windows", []),
        reported_indexes=entry.get("reported_windows", []),
        stable=bool(entry.get("stable")),
        warnings=list(entry.get("warnings", [])),
        models=entry.get("models", {}),
        server_unmeasured=str(entry.get("server_unmeasured") or ""),
        runs=list(entry.get("runs", [])),
    )


def _with_speed_ups(table: pd.DataFrame) -> pd.DataFrame:
    """An older compare.csv: each shared-memory row's throughput over the wire's at its size and load."""
    wire = {
        (row["Tensor Bytes"], str(row["Load"])): row["Inferences/Second"]
        for row in table.to_dict("records")
        if row["Transport"] == "wire"
    }
    speed_ups = []
    for row in table.to_dict("records"):
        base = wire.get((row["Tensor Bytes"], str(row["Load"])))
        speed_ups.append(row["Inferences/Second"] / base if row["Transport"] != "wire" and base else "")
    return table.assign(**{"Speed-up": speed_ups})


def load_compare(path: Path) -> CompareRun:
    try:
        table = pd.read_csv(path / "compare.csv", keep_default_na=False)
    except (ValueError, OSError) as exc:
        raise RunNotFound(f"{path}: unreadable compare.csv: {exc}") from None
    skipped = {}
    if "Skipped" in table.columns:
        marked = table["Skipped"].astype(str) != ""
        skipped = dict(zip(table.loc[marked, "Transport"], table.loc[marked, "Skipped"], strict=True))
        table = table.loc[~marked].drop(columns=["Skipped"])
    table = table.astype({"Tensor Bytes": "int64", "Inferences/Second": "float64"})
    if "Speed-up" not in table.columns:  # written before compare kept its speed-ups: the same figure, worked out
        table = _with_speed_ups(table)
    table["p99 latency"] = pd.to_numeric(table["p99 latency"], errors="coerce")  # empty: no request succeeded
    verdict_path = path / "verdict.txt"
    verdicts = verdict_path.read_text().splitlines() if verdict_path.is_file() else []
    about_path = path / "compare.json"
    try:
        about = runfile.read(about_path) if about_path.is_file() else {}
    except (ValueError, OSError) as exc:
        raise RunNotFound(f"{path}: unreadable compare.json: {exc}") from None
    return CompareRun(path, table.reset_index(drop=True), skipped, [v for v in verdicts if v], about)
