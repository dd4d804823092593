"""Server-side statistics (Triton's statistics extension) as deltas between window boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DURATIONS = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output", "cache_hit", "cache_miss")


@dataclass
class ModelCounters:
    """Cumulative counters of one model version, as the server reports them."""

    inference_count: int = 0
    execution_count: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    nanos: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_stats(cls, stats: dict[str, Any]) -> ModelCounters:
        inference = stats.get("inference_stats") or {}
        return cls(
            inference_count=int(stats.get("inference_count", 0)),
            execution_count=int(stats.get("execution_count", 0)),
            counts={name: int((inference.get(name) or {}).get("count", 0)) for name in DURATIONS},
            nanos={name: int((inference.get(name) or {}).get("ns", 0)) for name in DURATIONS},
        )


def snapshot(client: Any, model_names: list[str]) -> dict[str, ModelCounters]:
    """Counters for each named model (all versions summed)."""
    result: dict[str, ModelCounters] = {}
    for name in model_names:
        total = ModelCounters(counts=dict.fromkeys(DURATIONS, 0), nanos=dict.fromkeys(DURATIONS, 0))
        for stats in client.inference_statistics(name).get("model_stats", []):
            part = ModelCounters.from_stats(stats)
            total.inference_count += part.inference_count
            total.execution_count += part.execution_count
            for key in DURATIONS:
                total.counts[key] += part.counts[key]
                total.nanos[key] += part.nanos[key]
        result[name] = total
    return result


@dataclass
class ServerDelta:
    """What the server did for one model between two snapshots."""

    model: str
    inference_count: int
    execution_count: int
    counts: dict[str, int]
    nanos: dict[str, int]
    reset: bool = False  # a counter went backwards: the model was reloaded mid-window

    @property
    def success_count(self) -> int:
        return self.counts.get("success", 0)

    def average_us(self, name: str) -> float:
        """Mean time per successful request spent in ``name`` (queue, compute_infer, ...)."""
        count = self.counts.get(name, 0)
        return self.nanos.get(name, 0) / count / 1000 if count > 0 else 0.0

    @property
    def average_batch(self) -> float:
        return self.inference_count / self.execution_count if self.execution_count > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "counts": self.counts,
            "ns": self.nanos,
            "reset": self.reset,
            "average_batch": self.average_batch,
            "average_us": {name: self.average_us(name) for name in DURATIONS},
        }


def delta(before: dict[str, ModelCounters], after: dict[str, ModelCounters]) -> dict[str, ServerDelta]:
    """Per model, after minus before; a negative difference marks a counter reset."""
    result = {}
    for name, now in after.items():
        then = before.get(name, ModelCounters(counts=dict.fromkeys(DURATIONS, 0), nanos=dict.fromkeys(DURATIONS, 0)))
        counts = {k: now.counts[k] - then.counts.get(k, 0) for k in DURATIONS}
        nanos = {k: now.nanos[k] - then.nanos.get(k, 0) for k in DURATIONS}
        inference = now.inference_count - then.inference_count
        execution = now.execution_count - then.execution_count
        reset = inference < 0 or execution < 0 or any(v < 0 for v in counts.values())
        if reset:  # counters restarted from zero: what we can see is what came after the reset
            counts, nanos = dict(now.counts), dict(now.nanos)
            inference, execution = now.inference_count, now.execution_count
        result[name] = ServerDelta(name, inference, execution, counts, nanos, reset)
    return result


def merge_deltas(deltas: list[ServerDelta]) -> ServerDelta | None:
    """Several windows' deltas of one model as one."""
    if not deltas:
        return None
    counts = {k: sum(d.counts[k] for d in deltas) for k in DURATIONS}
    nanos = {k: sum(d.nanos[k] for d in deltas) for k in DURATIONS}
    return ServerDelta(
        deltas[0].model,
        sum(d.inference_count for d in deltas),
        sum(d.execution_count for d in deltas),
        counts,
        nanos,
        any(d.reset for d in deltas),
    )
