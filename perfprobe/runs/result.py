"""A sweep's results as a Python object: the levels table, histograms, server statistics, files."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from perfprobe.client.model import ModelDescription
from perfprobe.errors import ResultsNotWritten
from perfprobe.load.sweeper import LevelResult
from perfprobe.measure.histogram import LatencyHistogram
from perfprobe.measure.server_stats import ServerDelta
from perfprobe.report import runfile
from perfprobe.report.request_log import (
    FILE_NAME,
    append_request_log,
    kept_requests,
    read_request_log,
    release_requests,
    request_rows,
)
from perfprobe.report.results import columns, combined_row, has_intervals, level_row, model_row, repeated_row, write_csv
from perfprobe.report.runfile import write_together
from perfprobe.runs.models import ModelPart


@dataclass
class SweepResult:
    """Everything a sweep measured.

    ``levels`` is the table the CLI writes as ``results.csv`` (perf_analyzer's columns first);
    ``level_results`` holds every window of every level; ``document`` is ``results.json``. With
    ``--repeats``, ``runs`` holds each level's runs and a level's result and row pool them
    (``add_repeat``), its figures with 95% intervals over the runs.
    """

    model: ModelDescription
    load_kind: str
    batch_size: int
    document: dict[str, Any]
    level_results: list[LevelResult] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    output_dir: Path | None = None
    interrupted: bool = False
    report_written: bool = False
    parts: list[ModelPart] = field(default_factory=list)  # several models at once: each with its level
    part_composing: dict[str, list[str]] = field(default_factory=dict)  # and each one's composing models
    model_rows: list[dict[str, Any]] = field(default_factory=list)  # their rows (results-by-model.csv)
    runs: list[list[LevelResult]] = field(default_factory=list)  # per level, each run of it (--repeats)
    measured: list[LevelResult] = field(default_factory=list)  # every run of every level, as measured
    # once saved, the kept requests of the first ``_requests_saved`` levels live in this file, not in memory
    _requests_file: Path | None = field(default=None, init=False, repr=False)
    _requests_saved: int = field(default=0, init=False, repr=False)

    @property
    def composing_models(self) -> list[str]:
        return [step.model_name for step in self.model.ensemble_steps]

    def add(self, level: LevelResult) -> None:
        """A level's first run."""
        self.level_results.append(level)
        self.runs.append([level])
        self.measured.append(level)
        row = level_row(level, self.batch_size, self.composing_models or None)
        entry = runfile.level_entry(level, self.batch_size)
        self._set(len(self.level_results) - 1, [level], row, entry, append=True)

    def add_repeat(self, position: int, run: LevelResult) -> None:
        """Another run of the level at ``position``: its row becomes the runs' estimates with intervals."""
        runs = self.runs[position]
        runs.append(run)
        self.measured.append(run)
        pooled = LevelResult.pooled(runs)
        self.level_results[position] = pooled
        row, singles = repeated_row(runs, pooled, self.batch_size, self.composing_models or None)
        entry = runfile.repeated_entry(runs, pooled, singles, self.batch_size)
        self._set(position, runs, row, entry, append=False)

    def _set(
        self, position: int, runs: list[LevelResult], row: dict[str, Any], entry: dict[str, Any], append: bool
    ) -> None:
        """The level's row (combined over models, with several) and its results.json entry, new or replaced;
        ``runs``: each run of the level (one unless --repeats), pooled in ``level_results``."""
        if self.parts:
            level = self.level_results[position]
            rows = []
            entry["models"] = {}
            for part in self.parts:
                composing = self.part_composing.get(part.name) or []
                own, *own_runs = (
                    measured.for_model(part.name, part.level_at(level.level), tuple(composing))
                    for measured in (level, *runs)
                )
                rows.append(model_row(own, self.batch_size, composing or None, own_runs))
                entry["models"][part.name] = {"row": rows[-1], **runfile.level_entry(own, self.batch_size)}
            at = len(self.parts) * position
            self.model_rows[at : at + len(rows)] = rows
            row = combined_row(row, rows)
        if append:
            self.rows.append(row)
            self.document["levels"].append({})
        self.rows[position] = row
        self.document["levels"][position] = {**entry, "row": row}  # every declared figure, as in results.csv

    def run_values(self, position: int, column: str) -> list[Any]:
        """The figure ``column`` of each run of the level at ``position`` (one value unless --repeats)."""
        composing = self.composing_models or None
        return [level_row(run, self.batch_size, composing)[column] for run in self.runs[position]]

    @property
    def levels_by_model(self) -> pd.DataFrame:
        """With several models: one row per model and level (``results-by-model.csv``)."""
        names = columns(self.load_kind, has_intervals(self.model_rows))
        return pd.DataFrame(self.model_rows, columns=["Model", *names])

    @property
    def levels(self) -> pd.DataFrame:
        """One row per load level, exactly the CSV's columns (with intervals after repeated runs)."""
        return pd.DataFrame(self.rows, columns=columns(self.load_kind, has_intervals(self.rows)))

    @property
    def histograms(self) -> dict[float, LatencyHistogram]:
        """Per level, the end-to-end latency of its reported windows, merged exactly (HDR)."""
        return {level.level: level.merged().latency for level in self.level_results}

    @property
    def requests(self) -> pd.DataFrame:
        """Every measured request (``export_requests=True``; else empty): ``requests.jsonl`` as a table."""
        saved = read_request_log(self._requests_file) if self._requests_file is not None else []
        return pd.DataFrame(saved + list(request_rows(self.measured[self._requests_saved :])))

    @property
    def server_statistics(self) -> dict[float, ServerDelta | None]:
        """Per level, the target model's server-side statistics over its reported windows."""
        return {level.level: level.server() for level in self.level_results}

    def _save_requests(self, target: Path) -> None:
        """Append the levels not yet saved to ``target``, then let their records go.

        A sweep saves after every level, so a long run with ``--export-requests`` holds one level's
        requests in memory, not the run's; ``requests`` reads the saved ones back.
        """
        fresh = self.measured[self._requests_saved :]
        if self._requests_file is None:
            if not kept_requests(fresh):
                return
            target.write_text("")
        elif not self._requests_file.exists():
            raise ResultsNotWritten(
                f"{self._requests_file} was removed mid-run: the requests of the levels before are lost "
                "(results.csv and results.json are whole)"
            )
        elif self._requests_file.resolve() != target.resolve():
            shutil.copyfile(self._requests_file, target)
        self._requests_file = target
        append_request_log(target, fresh)
        for level in fresh:
            release_requests(level)
        self._requests_saved = len(self.measured)

    def save(
        self,
        directory: str | Path,
        report: bool = False,
        csv_copy: str | Path | None = None,
        latency_budget: str | None = None,
    ) -> Path:
        """Write ``results.csv`` and ``results.json`` (``requests.jsonl`` too where the run kept its requests;
        with ``report``, charts and summaries) there.

        ``latency_budget`` (``5ms``, ``p95=2ms``) names in the report the highest load within it.
        """
        path = Path(directory)
        writers: dict[Path, Callable[[Path], None]] = {
            path / "results.csv": lambda to: write_csv(to, self.load_kind, self.rows),
            path / "results.json": lambda to: runfile.write_plain(to, self.document),
        }
        if self.parts:
            writers[path / "results-by-model.csv"] = lambda to: write_csv(to, self.load_kind, self.model_rows, True)
        write_together(writers)
        self._save_requests(path / FILE_NAME)
        if csv_copy:
            write_csv(Path(csv_copy), self.load_kind, self.rows)
        if report and self.rows:
            from perfprobe.report.build import write_report
            from perfprobe.report.summary import parse_budget

            write_report(path, parse_budget(latency_budget))
        return path
