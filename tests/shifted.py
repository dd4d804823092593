"""A real run's results copied with every throughput scaled: a run whose change from the original is known."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from perfprobe.report.figures import interval_columns

THROUGHPUT = "Inferences/Second"


def shifted_copy(source: Path, target: Path, factor: float) -> Path:
    """The same run with every throughput (each run's, the estimate, its interval, each window) times ``factor``."""
    shutil.copytree(source, target)
    rows = list(csv.DictReader((source / "results.csv").open()))
    names = [THROUGHPUT, *interval_columns(THROUGHPUT)]
    for row in rows:
        for name in names:
            if row.get(name) not in (None, ""):
                row[name] = str(float(row[name]) * factor)
    with (target / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    document = json.loads((source / "results.json").read_text())
    for entry in document["levels"]:
        for row in [entry["row"], *(run["row"] for run in entry.get("runs", []))]:
            for name in names:
                if row.get(name) not in (None, ""):
                    row[name] *= factor
        for window in entry["windows"]:
            window["throughput"] *= factor
    document["started_at"] = f"{document['started_at']}-x{factor}"  # another run, as the history sees it
    (target / "results.json").write_text(json.dumps(document))
    return target
