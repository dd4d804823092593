"""perfprobe against an earlier build of itself (a git ref), on one embedded real Triton.

Whether a change to the load path made any protocol or mode slower: for each cell (protocol,
mode, concurrency) both builds run the same one-level sweep, alternately (the first to go
switches every round, so drift hits both alike), for ``--rounds`` rounds. A round's ratio is
this build's figure over the ref's; the table gives the median ratio and its range over the
rounds, for throughput and for the client CPU per request in the reported windows.

    python benchmarks/against_ref.py --against 4d4cb8b [--this HEAD] [--rounds 6]
        [--markdown docs/benchmarks/against-ref.md]

Without ``--this`` the working tree is measured (so keep it still while the benchmark runs).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rounds import cpus, summary

from perfprobe.server import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent
# protocol, mode[/workers][+connection], levels
DEFAULT_CELLS = (
    "http:sync:1,2,4,8;grpc:sync:1,2,4,8;http:async:1,8;grpc:stream:1,8;grpc:sync/asyncio:1,8;grpc:sync+grpcio:1,8"
)


def worktree(ref: str, where: Path) -> Path:
    """A checkout of ``ref`` beside this one (removed by the caller's temporary directory)."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), ref], check=True, capture_output=True
    )
    return where


def sweep_row(tree: Path, server: EmbeddedServer, protocol: str, asked: str, level: int, args, out: Path) -> dict:
    """One one-level sweep with the perfprobe in ``tree``; its results.csv row ({} when it failed)."""
    kind, _, connection = asked.partition("+")
    mode, _, workers = kind.partition("/")
    command = [
        sys.executable,
        "-m",
        "perfprobe",
        "sweep",
        "-m",
        "simple",
        "-u",
        server.url(protocol),
        "-i",
        protocol,
        "--mode",
        mode,
        "--concurrency",
        str(level),
        "--measurement-interval",
        str(args.window_ms),
        "--stability-percentage",
        "15",
        "--max-trials",
        "8",
        "--output-dir",
        str(out),
        "--no-report",
        *(["--workers", workers] if workers else []),
        *(["--grpc-transport", connection] if connection else []),
    ]
    env = dict(os.environ, PYTHONPATH=str(tree))
    pin = (lambda: os.sched_setaffinity(0, args.client_cpus)) if args.client_cpus else None
    done = subprocess.run(
        command, cwd=tree, env=env, capture_output=True, text=True, timeout=600, check=False, preexec_fn=pin
    )
    if done.returncode != 0:
        print(f"{tree.name}: {done.stderr.strip()[-300:]}", file=sys.stderr)
        return {}
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return rows[-1] if rows else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", required=True, help="the git ref to compare with")
    parser.add_argument("--this", help="a git ref to measure instead of the working tree")
    parser.add_argument("--cells", default=DEFAULT_CELLS, help="PROTOCOL:MODE[/WORKERS][+CONNECTION]:LEVELS;...")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--window-ms", type=int, default=1000)
    parser.add_argument("--markdown", help="append the table to this file")
    parser.add_argument("--server-cpus", type=cpus, help="cores for the server, e.g. 0 (default: all)")
    parser.add_argument("--client-cpus", type=cpus, help="cores for each perfprobe run, e.g. 1 (default: all)")
    args = parser.parse_args()
    cells = []
    for text in args.cells.split(";"):
        protocol, asked, levels = text.split(":")
        cells += [(protocol, asked, int(level)) for level in levels.split(",")]
    header = (
        "| protocol | mode | concurrency | throughput ratio, median (range) | client CPU/req ratio, median (range) |"
    )
    lines = [header, "|---|---|---|---|---|"]
    print(header, flush=True)
    everywhere = os.sched_getaffinity(0)
    if args.server_cpus:
        os.sched_setaffinity(0, args.server_cpus)  # the server and its backend inherit it
    with (
        tempfile.TemporaryDirectory() as work,
        EmbeddedServer(builtin_models=["simple"], pick_free_ports=True) as server,
    ):
        os.sched_setaffinity(0, everywhere)
        ref_tree = worktree(args.against, Path(work) / "ref")
        this_tree = worktree(args.this, Path(work) / "this") if args.this else ROOT
        try:
            for protocol, asked, level in cells:
                throughput, cpu = [], []
                for round_ in range(args.rounds):
                    trees = [("this", this_tree), ("ref", ref_tree)]
                    if round_ % 2:
                        trees.reverse()
                    rows = {}
                    for name, tree in trees:
                        out = Path(work) / f"{name}-{protocol}-{asked.replace('/', '-')}-{level}-{round_}"
                        rows[name] = sweep_row(tree, server, protocol, asked, level, args, out)
                        time.sleep(0.5)
                    mine, theirs = rows["this"], rows["ref"]
                    if mine and theirs:
                        throughput.append(float(mine["Inferences/Second"]) / float(theirs["Inferences/Second"]))
                        cpu.append(float(mine["Client CPU us/req"]) / float(theirs["Client CPU us/req"]))
                row = f"| {protocol} | {asked} | {level} | {summary(throughput)} | {summary(cpu)} |"
                lines.append(row)
                print(row, flush=True)
        finally:
            for tree in {ref_tree, this_tree} - {ROOT}:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    if args.markdown:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        with open(args.markdown, "a") as handle:
            this = args.this or "the working tree"
            handle.write(
                f"\n### {stamp} — {this} against {args.against}, `simple`, {machine}, "
                f"window {args.window_ms} ms, {args.rounds} alternated rounds"
                + (f", server on cores {sorted(args.server_cpus)}" if args.server_cpus else "")
                + (f", perfprobe on cores {sorted(args.client_cpus)}" if args.client_cpus else "")
                + "\n\n"
            )
            handle.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
