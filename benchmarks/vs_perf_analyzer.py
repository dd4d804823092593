"""perfprobe side by side with NVIDIA's C++ perf_analyzer, on one embedded real Triton.

Installs perf_analyzer from the tritonclient 2.48.0 wheel (plus libcudart from
nvidia-cuda-runtime-cu12 and Debian's libb64-0d), starts the embedded server once, then
runs both tools alternately on ``simple`` (or ``--model``) at each concurrency, HTTP and gRPC, with the
same window settings. Client CPU per request is the tool process's CPU time (user+sys)
divided by the requests the server counted while it ran, so warm-up and every trial
window are included on both sides alike (perf_analyzer reports nothing finer). perfprobe's
in-window figure is reported beside it: its process CPU during the reported windows over
the requests the server counted in them, without interpreter start-up and writing results.

    python benchmarks/vs_perf_analyzer.py [--levels 1,2,4,8] [--window-ms 2000] [--tensor-format json]
        [--markdown docs/benchmarks/vs-perf-analyzer.md]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from perfprobe.client import make_client
from perfprobe.server import BUILTIN_MODELS, EmbeddedServer
from perfprobe.server.distribution import cache_dir

PA_VERSION = "2.48.0"
T = TypeVar("T")


def install_perf_analyzer() -> tuple[Path, dict[str, str]]:
    """perf_analyzer's binary and the environment it runs in (downloaded once into the cache)."""
    root = cache_dir() / f"perf_analyzer-{PA_VERSION}"
    binary = root / "tc" / f"tritonclient-{PA_VERSION}.data" / "data" / "bin" / "perf_analyzer"
    cudart_dir = root / "cu" / "nvidia" / "cuda_runtime" / "lib"
    if not binary.exists() or not cudart_dir.exists():
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as download:
            for package in (f"tritonclient=={PA_VERSION}", "nvidia-cuda-runtime-cu12"):
                subprocess.run(
                    [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", download, package],
                    check=True,
                )
            for wheel in Path(download).glob("*.whl"):
                target = root / ("tc" if wheel.name.startswith("tritonclient") else "cu")
                with zipfile.ZipFile(wheel) as archive:
                    archive.extractall(target)
        binary.chmod(0o755)
    if not Path("/usr/lib/x86_64-linux-gnu/libb64.so.0d").exists() and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "libb64-0d"], check=True)
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join([str(cudart_dir), os.environ.get("LD_LIBRARY_PATH", "")]))
    return binary, env


def success_count(client, model: str) -> int:
    stats = client.inference_statistics(model)["model_stats"][0]
    return int(stats["inference_stats"]["success"]["count"])


def children_measured(action: Callable[[], T], client, model: str) -> tuple[T, float, int]:
    """Run ``action`` (tools as child processes, waited for); return its value, the children's CPU
    seconds, and the requests the server saw meanwhile."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    served_before = success_count(client, model)
    value = action()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return value, cpu, success_count(client, model) - served_before


def run_measured(
    command: list[str], env: dict[str, str], client, model: str
) -> tuple[subprocess.CompletedProcess, float, int]:
    """Run one tool; return its result, its CPU seconds, and the requests the server saw meanwhile."""
    return children_measured(
        lambda: subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False),
        client,
        model,
    )


def read_row(path: Path) -> dict[str, str]:
    if not path.exists():  # perf_analyzer writes no CSV when a level never stabilises
        return {}
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    return rows[-1] if rows else {}


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,2,4,8")
    parser.add_argument("--protocols", default="http,grpc")
    parser.add_argument(
        "--grpc-modes",
        default="sync,sync+grpcio,stream,sync/asyncio",
        help="perfprobe gRPC runs to compare: MODE[/WORKERS][+TRANSPORT], e.g. sync+grpcio (unary calls through "
        "grpcio instead of perfprobe's HTTP/2 connection); perf_analyzer streams for stream modes",
    )
    parser.add_argument("--http-modes", default="sync", help="perfprobe HTTP runs: MODE or MODE/WORKERS")
    parser.add_argument("--window-ms", type=int, default=3000)
    parser.add_argument("--stability", type=float, default=15.0, help="stability percentage, both tools")
    parser.add_argument("--markdown", help="append the table to this Markdown file")
    parser.add_argument("--model", default="simple", help="model both tools load (running_sum: a sequence model)")
    parser.add_argument("--model-repository", help="serve this repository too (e.g. tests/models)")
    parser.add_argument("--shape", action="append", default=[], metavar="NAME:DIMS", help="both tools' --shape")
    parser.add_argument(
        "--tensor-format", choices=("binary", "json"), default="binary", help="HTTP tensors both ways, both tools"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # stop the embedded server on SIGTERM too
    binary, pa_env = install_perf_analyzer()
    levels = [int(v) for v in args.levels.split(",")]
    lines = []
    with (
        EmbeddedServer(
            builtin_models=sorted({"simple", args.model} & set(BUILTIN_MODELS)),
            model_repositories=[args.model_repository] if args.model_repository else [],
            pick_free_ports=True,
        ) as server,
        make_client("http", server.http_url) as control,
        tempfile.TemporaryDirectory() as work,
    ):
        header = (
            "| protocol | perfprobe mode | concurrency | perf_analyzer infer/s | perfprobe infer/s | ratio | "
            "PA CPU us/req | perfprobe CPU us/req | perfprobe in-window CPU us/req | p50 ratio | p99 ratio |"
        )
        lines += [header, "|" + "---|" * 11]
        print(header, flush=True)
        for protocol in args.protocols.split(","):
            runs_asked = (args.grpc_modes if protocol == "grpc" else args.http_modes).split(",")
            for asked in runs_asked:
                kind, _, transport = asked.partition("+")
                mode, _, workers = kind.partition("/")
                label = asked
                for index, level in enumerate(levels):
                    pa_csv, pp_dir = (
                        Path(work) / f"pa-{protocol}-{mode}-{level}.csv",
                        Path(work) / f"pp-{protocol}-{label.replace('/', '-').replace('+', '-')}-{level}",
                    )
                    # both tools take these flags with the same names and meanings
                    target = ["-m", args.model, "-u", server.url(protocol), "-i", protocol]
                    target += [flag for shape in args.shape for flag in ("--shape", shape)]
                    if protocol == "http" and args.tensor_format != "binary":
                        target += ["--input-tensor-format", args.tensor_format]
                        target += ["--output-tensor-format", args.tensor_format]
                    windows = [
                        "--measurement-interval",
                        str(args.window_ms),
                        "--stability-percentage",
                        f"{args.stability:g}",
                        "--max-trials",
                        "10",
                    ]
                    pa_cmd = [
                        str(binary),
                        *target,
                        "--concurrency-range",
                        f"{level}:{level}",
                        *windows,
                        "-f",
                        str(pa_csv),
                    ]
                    if mode == "stream":
                        pa_cmd.append("--streaming")  # compare streams with streams
                    pp_cmd = [
                        sys.executable,
                        "-m",
                        "perfprobe",
                        "sweep",
                        *target,
                        "--mode",
                        mode,
                        "--concurrency",
                        str(level),
                        *windows,
                        "--output-dir",
                        str(pp_dir),
                        "--no-report",
                        *(["--workers", workers] if workers else []),
                        *(["--grpc-transport", transport] if transport else []),
                    ]
                    runs = [("pa", pa_cmd, pa_env), ("pp", pp_cmd, dict(os.environ))]
                    if index % 2:
                        runs.reverse()  # alternate who goes first, so drift does not favour one side
                    measured = {}
                    for name, command, env in runs:
                        result, cpu, served = run_measured(command, env, control, args.model)
                        if result.returncode != 0 and name == "pp":
                            print(result.stderr, file=sys.stderr)
                        measured[name] = (cpu, served)
                        time.sleep(1)
                    pa, pp = read_row(pa_csv), read_row(pp_dir / "results.csv")
                    if not pa or not pp:
                        missing = " and ".join(n for n, r in (("perf_analyzer", pa), ("perfprobe", pp)) if not r)
                        row = f"| {protocol} | {label} | {level} | {missing} produced no result (never stable) |"
                        lines.append(row)
                        print(row, flush=True)
                        continue
                    pa_tput, pp_tput = float(pa["Inferences/Second"]), float(pp["Inferences/Second"])
                    pa_cpu = measured["pa"][0] / max(measured["pa"][1], 1) * 1e6
                    pp_cpu = measured["pp"][0] / max(measured["pp"][1], 1) * 1e6
                    row = (
                        f"| {protocol} | {label} | {level} | {pa_tput:.0f} | {pp_tput:.0f} | {pp_tput / pa_tput:.2f} | "
                        f"{pa_cpu:.0f} | {pp_cpu:.0f} | {float(pp['Client CPU us/req']):.0f} | "
                        f"{float(pp['p50 latency']) / max(float(pa['p50 latency']), 1):.2f} | "
                        f"{float(pp['p99 latency']) / max(float(pa['p99 latency']), 1):.2f} |"
                    )
                    lines.append(row)
                    print(row, flush=True)
    if args.markdown:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        with open(args.markdown, "a") as handle:
            handle.write(
                f"\n### {stamp} — {args.model}, {machine}, window {args.window_ms} ms, {args.tensor_format} tensors, "
                f"stability {args.stability:g}%, Triton {server.version}\n\n"
            )
            handle.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
