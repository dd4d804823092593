"""System shared memory vs the wire, measured by perfprobe and by perf_analyzer in one run.

On ``identity`` with FP32 tensors of ``--size`` bytes at one concurrency, each tool measures
wire throughput and system-shm throughput; the table compares the two tools' shm/wire ratios.

    python benchmarks/shm_vs_perf_analyzer.py [--size 4194304] [--concurrency 2]
        [--markdown docs/benchmarks/shared-memory.md]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_perf_analyzer import _interrupt, install_perf_analyzer, read_row  # noqa: E402

from perfprobe.server import EmbeddedServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4 << 20, help="tensor bytes (FP32)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--window-ms", type=int, default=3000)
    parser.add_argument("--stability", type=float, default=15.0)
    parser.add_argument("--protocol", default="http")
    parser.add_argument("--markdown")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    binary, pa_env = install_perf_analyzer()
    elements = args.size // 4
    results: dict[tuple[str, str], float] = {}
    with (
        EmbeddedServer(builtin_models=["identity"], pick_free_ports=True) as server,
        tempfile.TemporaryDirectory() as work,
    ):
        url = server.url(args.protocol)
        common = [
            "--measurement-interval",
            str(args.window_ms),
            "--stability-percentage",
            f"{args.stability:g}",
            "--max-trials",
            "10",
        ]
        # both tools take these flags with the same names and meanings
        target = ["-m", "identity", "-u", url, "-i", args.protocol, "--shape", f"INPUT0:{elements}"]
        for transport in ("none", "system"):
            pa_csv = Path(work) / f"pa-{transport}.csv"
            pa_cmd = [
                str(binary),
                *target,
                "--concurrency-range",
                f"{args.concurrency}:{args.concurrency}",
                "-f",
                str(pa_csv),
                *common,
            ]
            pp_dir = Path(work) / f"pp-{transport}"
            pp_cmd = [
                sys.executable,
                "-m",
                "perfprobe",
                "sweep",
                *target,
                "--concurrency",
                str(args.concurrency),
                "--output-dir",
                str(pp_dir),
                *common,
            ]
            if transport == "system":
                pa_cmd += ["--shared-memory", "system", "--output-shared-memory-size", str(args.size)]
                pp_cmd += ["--shared-memory", "system", "--output-shared-memory-size", str(args.size)]
            subprocess.run(pa_cmd, env=pa_env, capture_output=True, text=True, timeout=900, check=False)
            time.sleep(1)
            subprocess.run(pp_cmd, env=dict(os.environ), capture_output=True, text=True, timeout=900, check=False)
            for tool, row in (("perf_analyzer", read_row(pa_csv)), ("perfprobe", read_row(pp_dir / "results.csv"))):
                if row:
                    results[(tool, transport)] = float(row["Inferences/Second"])
        version = server.version
    lines = ["| tool | wire infer/s | system shm infer/s | shm / wire |", "|---|---|---|---|"]
    ratios = {}
    for tool in ("perf_analyzer", "perfprobe"):
        wire, shm = results.get((tool, "none")), results.get((tool, "system"))
        if wire and shm:
            ratios[tool] = shm / wire
            lines.append(f"| {tool} | {wire:.1f} | {shm:.1f} | {shm / wire:.2f}x |")
        else:
            lines.append(f"| {tool} | {wire or 'no result'} | {shm or 'no result'} | - |")
    if len(ratios) == 2:
        lines.append(f"\nperfprobe's ratio over perf_analyzer's: {ratios['perfprobe'] / ratios['perf_analyzer']:.2f}")
    print("\n".join(lines))
    if args.markdown:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        with open(args.markdown, "a") as handle:
            handle.write(
                f"\n## System shm vs wire on `identity` (`benchmarks/shm_vs_perf_analyzer.py`)\n\n"
                f"### {stamp} — {args.size} B FP32 tensors, concurrency {args.concurrency}, "
                f"{args.protocol}, window {args.window_ms} ms, Triton {version}\n\n" + "\n".join(lines) + "\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
