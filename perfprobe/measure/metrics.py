"""Scrape Triton's Prometheus endpoint for CPU, memory and (where present) GPU figures."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections import defaultdict

WANTED = (
    "nv_cpu_utilization",
    "nv_cpu_memory_used_bytes",
    "nv_cpu_memory_total_bytes",
    "nv_gpu_utilization",
    "nv_gpu_power_usage",
    "nv_gpu_memory_used_bytes",
)


def parse_prometheus(text: str, wanted: tuple[str, ...] = WANTED) -> dict[str, float]:
    """Sum each wanted metric over its label sets (GPU figures add up over devices)."""
    totals: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0]
        if name in wanted:
            try:
                totals[name] += float(value)
            except ValueError:
                continue
    return dict(totals)


def scrape(url: str, timeout_s: float = 2.0) -> dict[str, float] | None:
    """The wanted metrics, or None when the endpoint does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return parse_prometheus(response.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def not_this_servers(url: str, model: str, timeout_s: float = 2.0) -> str:
    """Why the metrics at ``url`` are not known to be the measured server's ("" when they are).

    The page must answer and count inferences of ``model`` (``nv_inference_count{model="..."}``):
    a port that answers for another server, or nothing at all, must not be reported as this one.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            text = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"no metrics at {url} ({getattr(exc, 'reason', exc)})"
    wanted = f'model="{model}"'
    if any(line.startswith("nv_inference_count{") and wanted in line for line in text.splitlines()):
        return ""
    return f"the metrics at {url} do not count {model}: another server's"


METRICS_OFFSET = {"http": 2, "grpc": 1}  # Triton's defaults: HTTP 8000, gRPC 8001, metrics 8002


def default_metrics_urls(url: str, protocol: str) -> list[str]:
    """Where a Triton at ``url`` likely has its metrics: its ports' default offset, then port 8002.

    The offset finds a server started with consecutive ports (``perfprobe serve --free-ports``,
    ``--http-port 9000`` with gRPC 9001 and metrics 9002); 8002 one that moved only its inference
    ports. Each is used only when its page counts the measured model.
    """
    host, _, port = url.split("://")[-1].split("/")[0].rpartition(":")
    host = host or "localhost"
    urls = []
    if port.isdigit() and protocol in METRICS_OFFSET and int(port) + METRICS_OFFSET[protocol] <= 65535:
        urls.append(f"http://{host}:{int(port) + METRICS_OFFSET[protocol]}/metrics")
    default = f"http://{host}:8002/metrics"
    return urls + [default] if default not in urls else urls
