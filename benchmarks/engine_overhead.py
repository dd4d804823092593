"""The load engine's own cost per request, this build against a git ref, with no server and no protocol.

A fake sender answers at once (on greenlets after yielding to the hub once, as a socket wait
would), so what a worker spends per request is the engine's alone: taking an in-flight slot,
calling the sender, recording the outcome in the window. Both builds run alternately in fresh
interpreters, each for ``--seconds`` per cell; the table gives the median and range of the CPU per
request over the rounds. This is the part of the hot path the engine's loops changed, measured
without the server noise that end-to-end runs (``benchmarks/against_ref.py``) carry on 2 cores.

    python benchmarks/engine_overhead.py --against 4d4cb8b [--rounds 6]
        [--markdown docs/benchmarks/against-ref.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# runs in the build under test (its perfprobe first on sys.path): a fake sender, N workers, seconds of load
PROBE = """
import json, sys, time
from perfprobe.load.engine import EngineSettings, LoadEngine
from perfprobe.load.runtime import make_runtime
from perfprobe.measure.window import Recorder
try:
    from perfprobe.transport.base import Outcome, Sender
except ImportError:  # builds before the transport seam
    from perfprobe.load.senders import Outcome, Sender

kind, workers, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
runtime = make_runtime(kind)
yield_now = runtime.sleep if kind == "greenlet" else None

class FakeInstantSender(Sender):
    def call(self, request):
        if yield_now is not None:
            yield_now(0)  # a greenlet must let the others (and the controller) run, as a socket wait does
        return Outcome()

recorder = Recorder()
engine = LoadEngine(runtime, FakeInstantSender, [b"r"], recorder, EngineSettings())
started = time.process_time()
engine.start_closed(workers)
runtime.sleep(seconds) if kind == "greenlet" else time.sleep(seconds)
engine.stop()
cpu = time.process_time() - started
print(json.dumps({"requests": recorder.rotate().completed, "cpu_s": cpu}))
"""


def probe(tree: Path, kind: str, workers: int, seconds: float) -> float:
    """CPU µs per request of one run in ``tree``'s build."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, kind, str(workers), str(seconds)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    return measured["cpu_s"] / max(measured["requests"], 1) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", required=True, help="the git ref to compare with")
    parser.add_argument("--cells", default="thread:1,thread:8,greenlet:1,greenlet:8", help="KIND:WORKERS,...")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--markdown", help="append the table to this file")
    args = parser.parse_args()
    lines = [
        "| worker kind | workers | this build µs/req | ref µs/req | ratio, median (range) |",
        "|---|---|---|---|---|",
    ]
    print(lines[0], flush=True)
    with tempfile.TemporaryDirectory() as work:
        ref = Path(work) / "ref"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(ref), args.against],
            check=True,
            capture_output=True,
        )
        try:
            for cell in args.cells.split(","):
                kind, workers = cell.split(":")
                mine, theirs = [], []
                for round_ in range(args.rounds):
                    order = [(mine, ROOT), (theirs, ref)]
                    for into, tree in order if round_ % 2 == 0 else reversed(order):
                        into.append(probe(tree, kind, int(workers), args.seconds))
                ratios = [a / b for a, b in zip(mine, theirs, strict=True)]
                row = (
                    f"| {kind} | {workers} | {statistics.median(mine):.2f} | {statistics.median(theirs):.2f} | "
                    f"{statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f}) |"
                )
                lines.append(row)
                print(row, flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(ref)], check=False)
    if args.markdown:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        with open(args.markdown, "a") as handle:
            handle.write(
                f"\n### {stamp} — engine cost per request, the working tree against {args.against}, "
                f"{machine}, {args.seconds:g} s per run, {args.rounds} alternated rounds\n\n"
            )
            handle.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
