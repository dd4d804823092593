"""What a user can expect from each KServe v2 server on one machine: Triton, KServe's ModelServer, MLServer.

The same model (`simple`: two INT32 [1,16] inputs, their sum and difference) on each server, over
HTTP and gRPC, at concurrency 1, 4 and 16: perfprobe's throughput and its own client CPU per
request. The servers run one at a time on ``--server-cpus`` and perfprobe on ``--client-cpus``, so
neither takes the other's core; rounds alternate the servers' order and the table gives the
median and range over the rounds.

    python benchmarks/each_server.py [--rounds 3] [--server-cpus 0 --client-cpus 1]
        [--markdown docs/benchmarks/other-servers.md]

KServe and MLServer run from the environments ``make test`` makes (.venv-kserve, .venv-mlserver).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rounds import cpus, summary

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from other_servers import launch  # noqa: E402

from perfprobe.server import EmbeddedServer  # noqa: E402

SERVERS = ("triton", "kserve", "mlserver")
PROTOCOLS = ("http", "grpc")
LEVELS = "1:16:x4"
ITEM = {"INPUT0": {"content": list(range(16)), "shape": [1, 16]}, "INPUT1": {"content": [1] * 16, "shape": [1, 16]}}


def sweep(url: str, protocol: str, data: list[str], args: argparse.Namespace, out: Path) -> dict[int, dict]:
    """One sweep over the levels; each level's row by its concurrency ({} when the run failed)."""
    command = [
        sys.executable, "-m", "perfprobe", "sweep", "-m", "simple", "-u", url, "-i", protocol, *data,
        "--concurrency", LEVELS, "--measurement-interval", str(args.window_ms), "--stability-percentage", "15",
        "--max-trials", "6", "--output-dir", str(out), "--no-report",
    ]  # fmt: skip
    pin = (lambda: os.sched_setaffinity(0, args.client_cpus)) if args.client_cpus else None
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, preexec_fn=pin)
    if done.returncode != 0:
        print(f"{url} {protocol}: {done.stderr.strip()[-300:]}", file=sys.stderr)
        return {}
    levels = json.loads((out / "results.json").read_text())["levels"]
    return {int(level["level"]): level["row"] for level in levels}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window-ms", type=int, default=1000)
    parser.add_argument("--server-cpus", type=cpus, help="cores for the server, e.g. 0 (default: all)")
    parser.add_argument("--client-cpus", type=cpus, help="cores for perfprobe, e.g. 1 (default: all)")
    parser.add_argument("--markdown", help="append the table to this file")
    args = parser.parse_args()
    figures: dict[tuple[str, str, int], dict[str, list[float]]] = {}
    failed = 0
    with tempfile.TemporaryDirectory() as work:
        data_file = Path(work) / "simple.json"
        data_file.write_text(json.dumps({"data": [ITEM]}))
        for round_ in range(args.rounds):
            order = SERVERS if round_ % 2 == 0 else tuple(reversed(SERVERS))
            for kind in order:
                for protocol, rows in measure(kind, data_file, args, Path(work) / f"{kind}-{round_}").items():
                    failed += not rows
                    for level, row in rows.items():
                        cell = figures.setdefault((kind, protocol, level), {"throughput": [], "cpu": []})
                        cell["throughput"].append(float(row["Inferences/Second"]))
                        cell["cpu"].append(float(row["Client CPU us/req"]))
                print(f"round {round_ + 1}: {kind} done", flush=True)
    header = "| server | protocol | concurrency | infer/s, median (range) | perfprobe CPU µs/request, median (range) |"
    lines = [header, "|---|---|---|---|---|"]
    for (kind, protocol, level), cell in sorted(
        figures.items(), key=lambda item: (SERVERS.index(item[0][0]), item[0][1:])
    ):
        lines.append(
            f"| {kind} | {protocol} | {level} | {summary(cell['throughput'], 0)} | {summary(cell['cpu'], 1)} |"
        )
    print("\n".join(lines))
    if failed:
        print(f"{failed} sweeps failed: nothing appended", file=sys.stderr)
        return 1
    if args.markdown:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        with open(args.markdown, "a") as handle:
            handle.write(
                f"\n### {stamp} — `simple` on each server, {machine}, window {args.window_ms} ms, "
                f"{args.rounds} alternated rounds"
                + (f", server on cores {sorted(args.server_cpus)}" if args.server_cpus else "")
                + (f", perfprobe on cores {sorted(args.client_cpus)}" if args.client_cpus else "")
                + "\n\n"
                + "\n".join(lines)
                + "\n"
            )
    return 0


def measure(kind: str, data_file: Path, args: argparse.Namespace, out: Path) -> dict[str, dict[int, dict]]:
    """Start ``kind`` on the server's cores, sweep it over each protocol, stop it."""
    if kind == "triton":
        everywhere = os.sched_getaffinity(0)
        if args.server_cpus:
            os.sched_setaffinity(0, args.server_cpus)  # the server and its backend inherit it
        try:
            server = EmbeddedServer(builtin_models=["simple"], pick_free_ports=True).start()
        finally:
            os.sched_setaffinity(0, everywhere)
        try:
            return {p: sweep(server.url(p), p, ["--input-data", "random"], args, out / p) for p in PROTOCOLS}
        finally:
            server.stop()
    out.mkdir(parents=True, exist_ok=True)
    other = launch.start(kind, out, args.server_cpus)
    try:
        return {p: sweep(other.url(p), p, ["--input-data", str(data_file)], args, out / p) for p in PROTOCOLS}
    finally:
        other.stop()


if __name__ == "__main__":
    sys.exit(main())
