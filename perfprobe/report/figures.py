"""The figures of a load level, each declared once: its column, unit, value, and the names
``gate``, ``diff`` and the summary know it by.

``results.csv``'s columns are this table in order (perf_analyzer's columns first, with their
names, order and integer microseconds, so scripts written for its CSV read ours unchanged);
``results.json`` keeps each level's row under ``"row"``; ``gate`` and ``diff`` find a figure by
its ``gate`` name; the summary's level table shows those with a ``summary`` heading. A figure a
level cannot have (no server statistics, no streamed responses) is an empty cell, never 0.

Adding a figure is one ``declare(Figure(...))``: see docs/extending.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from perfprobe.load.sweeper import LevelResult

if TYPE_CHECKING:
    from perfprobe.report.rundata import Level

ABSENT = ""  # a cell the level has no value for


class LevelFacts:
    """What a level's figures are computed from, each worked out once (a figure reads what it needs)."""

    def __init__(self, result: LevelResult, batch_size: int, composing: list[str] | None = None) -> None:
        self.result = result
        self.batch_size = batch_size
        self.server_models = composing or [result.target_model]
        self.merged = result.merged()
        self.latency = self.merged.latency.summary()
        self.completed = self.merged.completed

    def per_request_us(self, total_ns: int) -> float:
        return total_ns / self.completed / 1000 if self.completed else 0.0

    @cached_property
    def server_us(self) -> dict[str, float] | None:
        """Average server time per request by part (queue, compute_*), summed over an ensemble's steps.

        None when the level has no server statistics (the server lacks the extension, or they could
        not be read): then the server's parts are unknown, not zero.
        """
        deltas = [delta for name in self.server_models if (delta := self.result.server(name)) is not None]
        if not deltas:
            return None
        parts = dict.fromkeys(("queue", "compute_input", "compute_infer", "compute_output"), 0.0)
        for delta in deltas:
            for part in parts:
                parts[part] += delta.average_us(part)
        return parts

    @cached_property
    def network_us(self) -> float | None:
        """What the end-to-end mean leaves once the client's and the server's own parts are taken out.

        None without server statistics: what is left would hold the server's time too.
        """
        if not self.completed or self.server_us is None:
            return None
        own = self.per_request_us(self.merged.send_ns) + self.per_request_us(self.merged.recv_ns)
        return max(self.merged.latency.mean_us - own - sum(self.server_us.values()), 0.0)

    @cached_property
    def target(self) -> Any:
        return self.result.server()

    @cached_property
    def seconds(self) -> float:
        return self.merged.duration_ns / 1e9 if self.merged.duration_ns else 0.0

    @cached_property
    def intended(self) -> dict[str, Any]:
        return self.merged.intended.summary() if self.merged.intended else {}

    @cached_property
    def first_response(self) -> dict[str, Any]:
        return self.merged.first_response.summary() if self.merged.first_response else {}

    @cached_property
    def between_responses(self) -> dict[str, Any]:
        return self.merged.between_responses.summary() if self.merged.between_responses else {}

    @cached_property
    def inter_token(self) -> dict[str, Any]:
        return self.merged.inter_token.summary() if self.merged.inter_token else {}

    @property
    def generated(self) -> bool:
        """Whether the level's answers were generated text (or streamed responses) with tokens counted."""
        return self.merged.token_requests > 0

    @cached_property
    def sequences(self) -> dict[str, Any]:
        return self.merged.sequence_latency.summary() if self.merged.sequence_latency else {}

    @property
    def stateful(self) -> bool:
        return self.merged.sequence_latency is not None or self.merged.sequences_failed > 0

    @cached_property
    def server_metrics(self) -> dict[str, float]:
        return self.result.metrics()


@dataclass(frozen=True)
class Figure:
    """One figure of a load level.

    ``value`` returns the cell (``ABSENT`` where the level has none). ``gate`` is the name ``gate``
    thresholds and ``diff`` use (empty: neither); ``per_window`` reads a run's stable windows back
    from results.json, for the noise a baseline comparison allows. ``summary`` is the heading in
    summary.md's level table (empty: not shown).
    """

    column: str
    unit: str  # "us", "infer/s", "1/s", "fraction", "count" or "" (text, flags)
    value: Callable[[LevelFacts], Any]
    gate: str = ""
    higher_is_better: bool = False
    per_window: Callable[[Level], list[float]] | None = None
    summary: str = ""
    diff: int = 0  # its place in ``perfprobe diff``'s table (0: not compared there)
    breakdown: str = ""  # its label in the latency-breakdown chart, stacked in table order ("": not a part)
    chart: str = ""  # the title of a chart of figures against the load level that it is drawn in ("": none)
    per_model: bool = True  # False: a combined row of several models leaves it empty (a server breakdown)
    from_server: bool = False  # read from the server's statistics: absent (with the reason) without them
    # over repeated runs (--repeats): "mean" (t-interval of the runs' mean) or "median" (bootstrap of their
    # median, for a percentile); "" for a figure with no interval (counts, flags), pooled over the runs
    across_runs: str = ""

    @property
    def kind(self) -> str:
        """How gates read and print it: latency (µs), throughput, ratio or count."""
        return {"us": "latency", "infer/s": "throughput", "1/s": "throughput", "fraction": "ratio"}.get(
            self.unit, "count"
        )


def _if(condition: bool, value: Any) -> Any:
    return value if condition else ABSENT


def _timed(read: Callable[[LevelFacts], Any]) -> Callable[[LevelFacts], Any]:
    """A latency figure: absent where no request succeeded (a level without one has no latency, not 0)."""
    return lambda facts: read(facts) if facts.completed else ABSENT


def _window_rate(count: str) -> Callable[[Level], list[float]]:
    """Per reported window: ``count`` (a window field of results.json) per second."""
    return lambda level: [w.get(count, 0) / (w["duration_ns"] / 1e9) for w in level.reported if w["duration_ns"]]


def _token_rate(facts: LevelFacts) -> Any:
    return _if(facts.generated and bool(facts.seconds), round(facts.merged.output_tokens / (facts.seconds or 1), 2))


def _goodput(facts: LevelFacts) -> Any:
    return _if(bool(facts.result.goodput) and bool(facts.seconds), round(facts.merged.good / (facts.seconds or 1), 2))


def _server_windows(part: str) -> Callable[[Level], list[float]]:
    def read(level: Level) -> list[float]:
        return [
            sum(model.get("average_us", {}).get(part, 0.0) for model in _server_parts(window))
            for window in level.reported
        ]

    return read


def _server_parts(window: dict) -> list[dict]:
    """The models whose times add up to the level's server figures: the target, or an ensemble's steps."""
    parts = list(window.get("server", {}).values())
    return parts[1:] if len(parts) > 1 else parts


def _window_error_rates(level: Level) -> list[float]:
    rates = []
    for window in level.reported:
        failed = sum(window["errors"].values())  # results.json keeps errors as code -> count
        finished = window["completed"] + failed
        rates.append(failed / finished if finished else 0.0)
    return rates


def _error_rate(facts: LevelFacts) -> float:
    finished = facts.completed + facts.merged.error_count
    return round(facts.merged.error_count / finished, 6) if finished else 0.0


def _token_time(name: str, gate: str, percentile: str, summary: str, chart: str) -> Figure:
    """A generated answer's time to first token or inter-token latency at a percentile (absent without tokens)."""

    def value(facts: LevelFacts) -> Any:
        source = facts.first_response if gate == "ttft" else facts.inter_token
        return _if(facts.generated, source.get(percentile, ABSENT))

    return Figure(
        f"{name} {percentile}", "us", value, f"{gate}_{percentile}", summary=summary, chart=chart, across_runs="median"
    )


def _server(part: str, column: str, gate: str, summary: str = "", diff: int = 0, breakdown: str = "") -> Figure:
    return Figure(
        column,
        "us",
        _timed(lambda f: round(f.server_us[part]) if f.server_us is not None else ABSENT),
        gate,
        False,
        _server_windows(part),
        summary,
        diff,
        per_model=False,
        breakdown=breakdown,
        from_server=True,
        across_runs="mean",
    )


def _percentile(name: str, summary: str = "", diff: int = 0) -> Figure:
    # its gate reads the level's HDR histograms (``level_metrics``), at this or any other percentile
    return Figure(
        f"{name} latency",
        "us",
        _timed(lambda f: f.latency.get(name, 0)),
        name,
        summary=summary,
        diff=diff,
        across_runs="median",
    )


PA_FIGURES = [
    Figure(
        "Inferences/Second",
        "infer/s",
        lambda f: round(f.merged.throughput(f.batch_size), 2),
        "throughput",
        True,
        lambda level: [float(w["throughput"]) for w in level.reported],
        "infer/s",
        1,
        across_runs="mean",
    ),
    Figure(
        "Client Send",
        "us",
        _timed(lambda f: round(f.per_request_us(f.merged.send_ns))),
        "client_send",
        breakdown="client send",
        across_runs="mean",
    ),
    Figure(
        "Network+Server Send/Recv",
        "us",
        _timed(lambda f: round(f.network_us) if f.network_us is not None else ABSENT),
        "network",
        per_model=False,
        breakdown="network + server overhead",
        from_server=True,
        across_runs="mean",
    ),
    _server("queue", "Server Queue", "server_queue", "server queue", diff=8, breakdown="server queue"),
    _server("compute_input", "Server Compute Input", "server_compute_input", breakdown="compute input"),
    _server("compute_infer", "Server Compute Infer", "server_compute_infer", breakdown="compute infer"),
    _server("compute_output", "Server Compute Output", "server_compute_output", breakdown="compute output"),
    Figure(
        "Client Recv",
        "us",
        _timed(lambda f: round(f.per_request_us(f.merged.recv_ns))),
        "client_recv",
        breakdown="client receive",
        across_runs="mean",
    ),
    _percentile("p50", "p50", diff=2),
    _percentile("p90", "p90", diff=3),
    _percentile("p95", diff=4),
    _percentile("p99", "p99", diff=5),
]
OWN_FIGURES = [
    _percentile("p99.9", "p99.9", diff=6),
    Figure(
        "Avg latency",
        "us",
        _timed(lambda f: round(f.latency.get("mean", 0))),
        "avg",
        summary="avg",
        diff=7,
        across_runs="mean",
    ),
    Figure("Std latency", "us", _timed(lambda f: round(f.latency.get("std", 0)))),
    Figure("Min latency", "us", _timed(lambda f: f.latency.get("min", 0)), "min"),
    Figure("Max latency", "us", _timed(lambda f: f.latency.get("max", 0)), "max"),
    Figure("Completed", "count", lambda f: f.completed),
    Figure("Errors", "count", lambda f: f.merged.error_count, "errors", summary="errors"),
    Figure("Error Rate", "fraction", _error_rate, "error_rate", False, _window_error_rates, diff=9, across_runs="mean"),
    Figure(
        "Avg Batch Size",
        "",
        lambda f: round(f.target.average_batch, 3) if f.target else ABSENT,
        per_model=False,
        from_server=True,
    ),
    Figure("Server Success", "count", lambda f: f.target.success_count if f.target else ABSENT, from_server=True),
    Figure("Intended p50 latency", "us", lambda f: f.intended.get("p50", ABSENT)),
    Figure("Intended p99 latency", "us", lambda f: f.intended.get("p99", ABSENT)),
    Figure("Late Sends", "count", lambda f: _if(bool(f.merged.intended), f.merged.late_sends)),
    Figure("Max Send Lag", "us", lambda f: _if(bool(f.merged.intended), round(f.merged.max_lag_ns / 1000))),
    Figure("First Response p50", "us", lambda f: f.first_response.get("p50", ABSENT)),
    Figure("Inter-Response p50", "us", lambda f: f.between_responses.get("p50", ABSENT)),
    Figure(
        "Responses/Second",
        "1/s",
        lambda f: _if(bool(f.merged.first_response and f.seconds), round(f.merged.responses / (f.seconds or 1), 2)),
        higher_is_better=True,
    ),
    _token_time("Time To First Token", "ttft", "p50", "TTFT p50", "Time to first token"),
    _token_time("Time To First Token", "ttft", "p99", "TTFT p99", "Time to first token"),
    _token_time("Inter Token Latency", "itl", "p50", "ITL p50", "Inter-token latency"),
    _token_time("Inter Token Latency", "itl", "p99", "", "Inter-token latency"),
    Figure(
        "Output Tokens/Second",
        "1/s",
        _token_rate,
        "output_token_rate",
        True,
        _window_rate("output_tokens"),
        "tokens/s",
        chart="Output tokens per second",
        across_runs="mean",
    ),
    Figure(
        "Output Tokens per Request",
        "count",
        lambda f: _if(f.generated, round(f.merged.output_tokens / max(f.merged.token_requests, 1), 2)),
        "output_tokens_per_request",
        across_runs="mean",
    ),
    Figure(
        "Request Goodput",
        "1/s",
        _goodput,
        "goodput",
        True,
        _window_rate("good_requests"),
        "goodput/s",
        chart="Request goodput",
        across_runs="mean",
    ),
    Figure(
        "Sequences/Second",
        "1/s",
        lambda f: _if(f.stateful, round(f.merged.sequence_rate(), 2)),
        "sequence_rate",
        True,
        across_runs="mean",
    ),
    Figure(
        "Sequence p50 latency", "us", lambda f: f.sequences.get("p50", ABSENT), "sequence_p50", across_runs="median"
    ),
    Figure(
        "Sequence p99 latency", "us", lambda f: f.sequences.get("p99", ABSENT), "sequence_p99", across_runs="median"
    ),
    Figure("Sequences Failed", "count", lambda f: _if(f.stateful, f.merged.sequences_failed)),
    Figure("Client CPU us/req", "us", lambda f: round(f.result.cpu_us_per_request(), 1)),
    Figure(
        "Server CPU Util",
        "fraction",
        lambda f: (
            round(f.server_metrics["nv_cpu_utilization"], 4) if "nv_cpu_utilization" in f.server_metrics else ABSENT
        ),
    ),
]
# the level's own state, after every measured figure
STATE_FIGURES = [
    Figure("Stable", "", lambda f: "yes" if f.result.stable else "no"),
    Figure("Windows", "count", lambda f: len(f.result.windows)),
    Figure("Warnings", "", lambda f: "; ".join(f.result.warnings)),
]
FIGURES: list[Figure] = [*PA_FIGURES, *OWN_FIGURES, *STATE_FIGURES]


def declare(figure: Figure) -> Figure:
    """Add a figure: a column after the measured ones (before ``Stable``), in the gates, diff and summary."""
    if any(known.column == figure.column or (figure.gate and known.gate == figure.gate) for known in FIGURES):
        raise ValueError(f"a figure named {figure.column!r} (or gated as {figure.gate!r}) is already declared")
    FIGURES.insert(FIGURES.index(STATE_FIGURES[0]), figure)
    return figure


def column_of(gate: str) -> str:
    """The column of the figure ``gate`` and ``diff`` know as ``gate`` (``throughput``: ``Inferences/Second``)."""
    return gated()[gate].column


def breakdown_parts() -> list[tuple[str, str]]:
    """(column, label) of the parts the mean latency is split into, in stacking order."""
    return [(figure.column, figure.breakdown) for figure in FIGURES if figure.breakdown]


def charted() -> dict[str, list[Figure]]:
    """Figures drawn against the load level, by chart title (a declared figure's own chart)."""
    charts: dict[str, list[Figure]] = {}
    for figure in FIGURES:
        if figure.chart:
            charts.setdefault(figure.chart, []).append(figure)
    return charts


def figure_columns() -> list[str]:
    return [figure.column for figure in FIGURES]


def interval_columns(column: str) -> tuple[str, str]:
    """The CSV columns of a figure's 95% interval over repeated runs."""
    return f"{column} CI low", f"{column} CI high"


def interval_in(row: dict[str, Any], column: str) -> tuple[Any, Any] | None:
    """A row's 95% interval of ``column`` (low, high), or None where it has none (one run, or too few)."""
    low, high = (row.get(name, ABSENT) for name in interval_columns(column))
    return None if low in (ABSENT, None) or high in (ABSENT, None) else (low, high)


def with_intervals() -> list[Figure]:
    """The figures that get an interval over repeated runs (``across_runs``), in table order."""
    return [figure for figure in FIGURES if figure.across_runs]


def gated() -> dict[str, Figure]:
    """Every figure with a gate name, by that name."""
    return {figure.gate: figure for figure in FIGURES if figure.gate}


def level_values(result: LevelResult, batch_size: int, composing: list[str] | None = None) -> dict[str, Any]:
    """Every figure of one level, by column."""
    facts = LevelFacts(result, batch_size, composing)
    return {figure.column: figure.value(facts) for figure in FIGURES}
