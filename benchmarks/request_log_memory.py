"""What ``--export-requests`` costs in memory: peak RSS of one sweep with the log against the same sweep without.

One ``perfprobe sweep`` over HTTP at several concurrency levels against an embedded real Triton,
run with and without ``--export-requests``; the peak resident memory of the command's process is
read from the kernel (``wait4``). The difference, divided by the requests the log holds, is what
each kept request costs. ``--against REF`` runs the same pair from a git worktree at REF in the
same session, so the two builds are compared on one machine state.

    python benchmarks/request_log_memory.py [--levels 1:4] [--interval-ms 3000] [--against REF]
        [--markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from processes import publish

from perfprobe.server import EmbeddedServer

REPOSITORY = Path(__file__).resolve().parent.parent


@dataclass
class Peak:
    rss_mib: float
    requests: int  # lines of requests.jsonl (0 without the log)


def sweep_peak(source: Path, url: str, levels: str, interval_ms: int, export: bool) -> Peak:
    """Peak RSS of one sweep run from ``source`` (a checkout), with or without the request log."""
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable, "-m", "perfprobe", "sweep", "-u", url, "-m", "simple", "--concurrency", levels,
            "--measurement-interval", str(interval_ms), "--max-trials", "3",
            "--no-report", "--output-dir", out, *(["--export-requests"] if export else []),
        ]  # fmt: skip
        environment = {**os.environ, "PYTHONPATH": str(source)}
        process = subprocess.Popen(command, cwd=source, env=environment, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"sweep from {source} failed with exit code {process.returncode}")
        log = Path(out) / "requests.jsonl"
        lines = sum(1 for _ in log.open()) if log.exists() else 0
        return Peak(usage.ru_maxrss / 1024, lines)


def per_request_bytes(source: Path, url: str, levels: str, interval_ms: int) -> tuple[Peak, Peak, float]:
    without = sweep_peak(source, url, levels, interval_ms, export=False)
    kept = sweep_peak(source, url, levels, interval_ms, export=True)
    return without, kept, (kept.rss_mib - without.rss_mib) * 2**20 / max(kept.requests, 1)


def worktree(ref: str, folder: Path) -> Path:
    path = folder / "against"
    subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], cwd=REPOSITORY, check=True,
                   capture_output=True)  # fmt: skip
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1:4", help="the sweep's --concurrency")
    parser.add_argument("--interval-ms", type=int, default=3000, help="each window's length")
    parser.add_argument("--against", help="a git ref to measure too, from a worktree")
    parser.add_argument("--markdown", help="append the table to this file")
    args = parser.parse_args()
    builds = {"this checkout": REPOSITORY}
    with (
        tempfile.TemporaryDirectory() as scratch,
        EmbeddedServer(builtin_models=["simple"], pick_free_ports=True) as server,
    ):
        if args.against:
            builds[args.against] = worktree(args.against, Path(scratch))
        try:
            lines = [
                f"`python benchmarks/request_log_memory.py --levels {args.levels} --interval-ms {args.interval_ms}"
                + (f" --against {args.against}`" if args.against else "`"),
                "",
                "| build | peak RSS without log (MiB) | with log (MiB) | requests logged | bytes per kept request |",
                "| --- | ---: | ---: | ---: | ---: |",
            ]
            for name, source in builds.items():
                without, kept, per_request = per_request_bytes(source, server.http_url, args.levels, args.interval_ms)
                lines.append(
                    f"| {name} | {without.rss_mib:.0f} | {kept.rss_mib:.0f} | {kept.requests:,} | {per_request:.0f} |"
                )
        finally:
            if args.against:
                subprocess.run(["git", "worktree", "remove", "--force", str(builds[args.against])], cwd=REPOSITORY,
                               check=False, capture_output=True)  # fmt: skip
    publish("\n".join(lines), args.markdown)


if __name__ == "__main__":
    main()
