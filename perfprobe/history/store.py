"""The history database: one SQLite file (a CI cache can keep it) holding each run's levels and settings.

A run is added whole or not at all (one transaction); a file that is locked by another writer,
is not SQLite, or holds another schema is refused with ``HistoryUnusable`` (exit 7) before
anything is written. Each figure is kept per load level and per run of it (``--repeats``), by
its gate name (``throughput``, ``p99``…), so ``history show`` and ``gate --against-history``
read the same numbers ``gate`` reads from the run's directory.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfprobe import exitcodes
from perfprobe.errors import PerfprobeError
from perfprobe.report import level_metrics
from perfprobe.report.figures import gated
from perfprobe.report.rundata import SweepRun

SCHEMA_VERSION = 1
LOCK_TIMEOUT_S = 2.0  # how long a writer waits for another one before the database counts as locked
_SCHEMA = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    run_key TEXT NOT NULL UNIQUE,
    added_at TEXT NOT NULL,
    started_at TEXT,
    path TEXT,
    model TEXT NOT NULL,
    protocol TEXT,
    endpoint TEXT,
    shared_memory TEXT,
    batch_size INTEGER,
    load_kind TEXT,
    git_commit TEXT,
    branch TEXT,
    machine TEXT,
    perfprobe_version TEXT,
    settings TEXT
);
CREATE TABLE figures (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    level REAL NOT NULL,
    repeat INTEGER NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL
);
CREATE INDEX figures_by_metric ON figures (metric, level);
"""
# what makes two runs comparable: the same model measured the same way
MATCHED = ("model", "protocol", "endpoint", "shared_memory", "batch_size", "load_kind")


class HistoryUnusable(PerfprobeError):
    """The history database cannot be read or written (locked, corrupt, another schema): nothing was written."""

    exit_code = exitcodes.NO_RESULTS


def default_path() -> Path:
    """``$XDG_DATA_HOME/perfprobe/history.db`` (``~/.local/share/perfprobe/history.db``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "perfprobe" / "history.db"


@dataclass(frozen=True)
class StoredRun:
    """One run of the history, as its series show it."""

    id: int
    path: str
    added_at: str
    started_at: str
    git_commit: str
    branch: str
    machine: str
    values: tuple[float, ...]  # the figure at the level asked for, per run of it (one unless --repeats)

    @property
    def label(self) -> str:
        commit = self.git_commit[:10] if self.git_commit else "no commit"
        return f"#{self.id} {self.started_at or self.added_at} {commit}" + (f" ({self.branch})" if self.branch else "")


@contextmanager
def opened(path: str | Path, write: bool = False) -> Iterator[sqlite3.Connection]:
    """The database, checked; with ``write``, created when missing and held in one immediate transaction
    (committed at the end, rolled back on any failure)."""
    path = Path(path)
    if not write and not path.is_file():
        raise HistoryUnusable(f"history {path}: no such database (perfprobe history add RUN creates it)")
    if write:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        connection = sqlite3.connect(path, timeout=LOCK_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise HistoryUnusable(f"history {path}: cannot open ({exc})") from None
    with closing(connection):
        try:
            if write:
                connection.execute("BEGIN IMMEDIATE")
            _check_schema(connection, path, write)
            yield connection
            if write:
                connection.execute("COMMIT")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise HistoryUnusable(f"history {path}: {_reason(exc)}; nothing was written") from None
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise


def _reason(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return f"locked by another process (waited {LOCK_TIMEOUT_S:g} s)"
    if "not a database" in text or "malformed" in text:
        return "not a perfprobe history (the file is not an SQLite database, or it is damaged)"
    return text


def _check_schema(connection: sqlite3.Connection, path: Path, write: bool) -> None:
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if version == 0 and not tables:
        if write:  # inside the caller's transaction: a failure later leaves no empty schema behind
            for statement in filter(str.strip, _SCHEMA.split(";")):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return
    if version != SCHEMA_VERSION or not {"runs", "figures"} <= tables:
        raise HistoryUnusable(
            f"history {path}: another schema (version {version}, tables {', '.join(sorted(tables)) or 'none'}; "
            f"this perfprobe reads version {SCHEMA_VERSION}); nothing was written"
        )


def add(path: str | Path, run: SweepRun) -> tuple[int, bool]:
    """Add a run (its id, and False when it was there already: a run is kept once)."""
    facts = _facts(run)
    figures = list(_figures(run))
    with opened(path, write=True) as connection:
        known = connection.execute("SELECT id FROM runs WHERE run_key = ?", (facts["run_key"],)).fetchone()
        if known:
            return int(known[0]), False
        names = ", ".join(facts)
        cursor = connection.execute(
            f"INSERT INTO runs ({names}) VALUES ({', '.join('?' for _ in facts)})", tuple(facts.values())
        )
        run_id = int(cursor.lastrowid or 0)
        connection.executemany(
            "INSERT INTO figures (run_id, level, repeat, metric, value) VALUES (?, ?, ?, ?, ?)",
            [(run_id, *figure) for figure in figures],
        )
    return run_id, True


def _facts(run: SweepRun) -> dict[str, Any]:
    document = run.document
    return {
        "run_key": f"{run.model}|{document.get('started_at')}|{document.get('finished_at')}|{run.path.resolve()}",
        "added_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "started_at": document.get("started_at"),
        "path": str(run.path.resolve()),
        **matching(run),
        **_provenance(),
        "perfprobe_version": document.get("perfprobe_version"),
        "settings": json.dumps(run.settings, default=str, sort_keys=True),
    }


def _provenance() -> dict[str, str]:
    """Commit, branch and machine as CI says them (GitHub Actions, GitLab, or plain git in this directory)."""
    env = os.environ
    commit = env.get("GITHUB_SHA") or env.get("CI_COMMIT_SHA") or _git("rev-parse", "HEAD")
    branch = env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME") or env.get("CI_COMMIT_REF_NAME")
    machine = env.get("RUNNER_NAME") or env.get("CI_RUNNER_DESCRIPTION") or platform.node()
    return {"git_commit": commit, "branch": branch or _git("rev-parse", "--abbrev-ref", "HEAD"), "machine": machine}


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _figures(run: SweepRun) -> Iterator[tuple[float, int, str, float]]:
    """(level, run number, metric, value) for every gated figure a level has, per run of it."""
    metrics = [level_metrics.metric(name) for name in gated()]
    for level in run.levels:
        for number, one in enumerate(level.run_levels(), 1):
            for metric in metrics:
                value = metric.value(one)
                if not level_metrics.absent(value):
                    yield level.level, number, canonical(metric.name), float(value)


def series(path: str | Path, match: dict[str, Any], metric: str, level: float) -> list[StoredRun]:
    """The runs that measured ``metric`` at ``level`` with the settings in ``match`` (oldest first)."""
    wanted = {key: value for key, value in match.items() if key in MATCHED and value is not None}
    where = " AND ".join(f"runs.{key} = ?" for key in wanted)
    query = (
        "SELECT runs.id, runs.path, runs.added_at, runs.started_at, runs.git_commit, runs.branch, runs.machine, "
        "figures.value "
        "FROM runs JOIN figures ON figures.run_id = runs.id "
        f"WHERE figures.metric = ? AND figures.level = ?{' AND ' + where if where else ''} "
        "ORDER BY runs.id, figures.repeat"
    )
    with opened(path) as connection:
        rows = connection.execute(query, (canonical(metric), level, *wanted.values())).fetchall()
    runs: dict[int, StoredRun] = {}
    for run_id, path_text, added, started, commit, branch, machine, value in rows:
        known = runs.get(run_id)
        values = (*known.values, value) if known else (value,)
        runs[run_id] = StoredRun(
            run_id, path_text or "", added, started or "", commit or "", branch or "", machine or "", values
        )
    return list(runs.values())


def canonical(name: str) -> str:
    """The name a figure is stored under: a percentile as ``p99``/``p99.9`` however it was written."""
    percentile = level_metrics.gated_percentile(name)
    return f"p{percentile:g}" if percentile is not None else level_metrics.metric(name).name


def matching(run: SweepRun) -> dict[str, Any]:
    """What a run's comparable history has in common with it (``MATCHED``)."""
    settings = run.settings
    return {
        "model": run.model,
        "protocol": settings.get("protocol"),
        "endpoint": settings.get("endpoint") or "infer",
        "shared_memory": settings.get("shared_memory") or "none",
        "batch_size": int(settings.get("batch_size") or 1),
        "load_kind": run.load_kind,
    }
