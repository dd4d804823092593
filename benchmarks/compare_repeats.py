"""Single-run compare verdicts against the interval over repeats: ten runs of the same compare in one command.

``perfprobe compare --repeats N`` on ``identity`` (wire vs system shm) measures each cell in turn at each
level, N times. Each run pair (the wire's run i, system shm's run i) is what one single-run compare would
have said; the table shows their spread beside the 95% interval over all N, and how many runs the
interval needed to exclude 1 (to call shm faster or slower) and stay that way.

    python benchmarks/compare_repeats.py [--repeats 10] [--sizes 64KiB,1MiB] [--server-cpus 0 --client-cpus 1]
        [--markdown docs/benchmarks/compare-repeats.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rounds import cpus  # noqa: E402

from perfprobe.measure.intervals import ratio_interval  # noqa: E402
from perfprobe.server import EmbeddedServer  # noqa: E402
from perfprobe.units import human, parse_size  # noqa: E402


def _run_values(cell: Path) -> list[float]:
    """Each run's throughput at the cell's one level, in run order."""
    (entry,) = json.loads((cell / "results.json").read_text())["levels"]
    runs = entry.get("runs") or [{"row": entry["row"]}]
    return [float(run["row"]["Inferences/Second"]) for run in runs]


def _decided_at(ratios: list[float]) -> tuple[int | None, str]:
    """The fewest first runs whose interval excludes 1 and keeps excluding it (same side) to the end."""
    verdicts = []
    for count in range(2, len(ratios) + 1):
        found = ratio_interval(ratios[:count], [1.0] * count)
        side = "" if found is None or found.low <= 1 <= found.high else ("faster" if found.low > 1 else "slower")
        verdicts.append((count, side))
    final = verdicts[-1][1] if verdicts else ""
    if not final:
        return None, "not decided"
    for count, _ in verdicts:
        if all(later == final for _, later in verdicts[count - 2 :]):
            return count, final
    return None, "not decided"


def _rows(work: Path, sizes: list[int]) -> list[str]:
    lines = [
        "| size | single-run verdicts (shm/wire), min – median – max | runs calling it faster / slower / within 5% "
        "| 95% CI over all runs | runs needed to decide |",
        "|---|---|---|---|---|",
    ]
    for size in sizes:
        wire, shm = _run_values(work / f"none-{size}"), _run_values(work / f"system-{size}")
        ratios = [s / w for s, w in zip(shm, wire, strict=True)]
        median = statistics.median(ratios)
        faster = sum(r > 1.05 for r in ratios)
        slower = sum(r < 0.95 for r in ratios)
        found = ratio_interval(ratios, [1.0] * len(ratios))
        interval = f"{found.point:.2f}x ({found.low:.2f}–{found.high:.2f})" if found else "—"
        count, side = _decided_at(ratios)
        decided = f"{count} ({side})" if count else side
        lines.append(
            f"| {human(size)} | {min(ratios):.2f}x – {median:.2f}x – {max(ratios):.2f}x "
            f"| {faster} / {slower} / {len(ratios) - faster - slower} | {interval} | {decided} |"
        )
        lines.append(f"|  | runs: {', '.join(f'{r:.2f}' for r in ratios)} | | | |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--sizes", default="64KiB,1MiB")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--window-ms", type=int, default=1000)
    parser.add_argument("--server-cpus", type=cpus, help="pin the server to these cores (e.g. 0)")
    parser.add_argument("--client-cpus", type=cpus, help="pin perfprobe to these cores (e.g. 1)")
    parser.add_argument("--markdown")
    args = parser.parse_args()
    sizes = [parse_size(size) for size in args.sizes.split(",")]
    if args.server_cpus:
        os.sched_setaffinity(0, args.server_cpus)  # the server inherits it
    with (
        EmbeddedServer(builtin_models=["identity"], pick_free_ports=True) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        if args.client_cpus:
            os.sched_setaffinity(0, args.client_cpus)  # perfprobe's compare inherits this one
        work = Path(tmp) / "compare"
        command = [
            sys.executable, "-m", "perfprobe", "compare", "-m", "identity", "-u", server.http_url,
            "--sizes", args.sizes, "--transports", "none,system", "--concurrency", str(args.concurrency),
            "--repeats", str(args.repeats), "--measurement-interval", str(args.window_ms), "--no-report",
            "--output-dir", str(work),
        ]  # fmt: skip
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            return done.returncode
        elapsed = time.monotonic() - started
        verdicts = (work / "verdict.txt").read_text().strip().splitlines()
        lines = _rows(work, sizes)
        version = server.version
    report = (
        "\n".join(lines) + "\n\nperfprobe's own verdicts over all runs:\n\n" + "\n".join(f"- {v}" for v in verdicts)
    )
    print(report)
    if args.markdown:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        pinned = (
            f"server cores {sorted(args.server_cpus)}, perfprobe cores {sorted(args.client_cpus)}"
            if (args.server_cpus and args.client_cpus)
            else "unpinned"
        )
        with open(args.markdown, "a") as handle:
            handle.write(
                f"\n### {stamp} — `identity`, HTTP, concurrency {args.concurrency}, {args.repeats} runs, "
                f"window {args.window_ms} ms, {pinned}, Triton {version}, {elapsed:.0f} s\n\n{report}\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
