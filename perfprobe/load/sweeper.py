"""The sweep: for each load level, run the engine, measure windows until stable, collect results.

One level: start the load, warm up, then measure consecutive windows. After each window
the server's statistics are read and the window is checked with the stability rule;
the level ends when the last K windows agree or after ``max_trials`` windows, and an
unstable level is reported as such rather than dropped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from perfprobe.client import InferenceClient
from perfprobe.client.errors import CONNECTION_FAILURES, MAYBE_SERVED
from perfprobe.errors import LoadFailed, PerfprobeError, ServerUnreachable
from perfprobe.load.liveness import ServerWatch
from perfprobe.load.schedule import ScheduleSpec
from perfprobe.load.windowed import ClosedWindow, LoadHealth, ProcessShare, WindowedLoad
from perfprobe.measure import metrics as prometheus
from perfprobe.measure import server_stats
from perfprobe.measure.stability import StabilityRule
from perfprobe.measure.window import WindowStats, merge_stats


@dataclass(frozen=True)
class MeasureSettings:
    window_ms: int = 5000
    count_mode: bool = False
    window_requests: int = 50
    count_window_timeout_s: float = 120.0
    stability: StabilityRule = StabilityRule()
    max_trials: int = 10
    warmup_requests: int = 0
    warmup_s: float = 0.0
    drain: bool = True  # closed loop: pause at window boundaries so server and client counts agree
    drain_timeout_s: float = 30.0
    settle_timeout_s: float = 0.25  # how long a drained window waits for the server's counters to catch up
    batch_size: int = 1
    client_cpu_warning: float = 0.9  # fraction of one core above which the client may be the bottleneck
    finish_timeout_s: float = 35.0  # a level's end: how long live sequences may take to get their END
    interrupted_finish_s: float = 2.0  # the same after Ctrl-C / SIGTERM: briefly, the user is waiting
    late_warning: float = 0.01  # fraction of late open-loop sends that is worth a warning
    goodput: str = ""  # the --goodput limits as given ("": goodput not counted)


@dataclass
class WindowRecord:
    stats: WindowStats
    server: dict[str, server_stats.ServerDelta]
    metrics: dict[str, float] | None
    cpu_ns: int
    drained: bool
    shares: list[ProcessShare] = field(default_factory=list)  # per load process, with --processes
    parts: dict[str, WindowStats] = field(default_factory=dict)  # several models at once: each model's own
    # undrained: how long after the window closed the server's counters had been read; requests that
    # completed meanwhile are on the server's side of this boundary and on the client's next window
    server_read_lag_ns: int = 0

    def latency_value(self, key: str) -> float:
        summary = self.stats.latency.summary()
        return float(summary.get(key, 0.0))


@dataclass
class LevelResult:
    """One load level's measurements: every window, and the figures of the last K windows."""

    load_kind: str  # "concurrency" or "rate"
    level: float
    windows: list[WindowRecord] = field(default_factory=list)
    stable: bool = False
    warnings: list[str] = field(default_factory=list)
    target_model: str = ""
    stability_windows: int = 3
    trace: dict[str, float | int | bool] | None = None  # a replayed trace: its requests, sends made, how much
    server_unmeasured: str = ""  # why the level has no server-side figures ("" when it has them)
    warmup: WindowStats | None = None  # what the warm-up sent: unreported, but the server served it
    goodput: str = ""  # the --goodput limits its good requests met ("": not counted)
    started_s: float = 0.0  # wall clock (Unix seconds) when its load started, and when its last window closed:
    finished_s: float = 0.0  # repeated runs (--repeats) show their interleaving in results.json by these

    @classmethod
    def pooled(cls, runs: list[LevelResult]) -> LevelResult:
        """The same level measured in several runs (``--repeats``), as one: each run's reported windows.

        Counts, server statistics and histograms add up over the runs; it is stable when every run was,
        and a run's warnings say which run.
        """
        first = runs[0]
        windows = [window for run in runs for window in run.reported]
        warnings = [f"run {number}: {text}" for number, run in enumerate(runs, 1) for text in run.warnings]
        warmups = [run.warmup for run in runs if run.warmup is not None]
        return cls(
            first.load_kind,
            first.level,
            windows,
            stable=all(run.stable for run in runs),
            warnings=list(dict.fromkeys(warnings)),
            target_model=first.target_model,
            stability_windows=max(len(windows), 1),
            trace=first.trace,
            server_unmeasured=next((run.server_unmeasured for run in runs if run.server_unmeasured), ""),
            warmup=merge_stats(warmups) if warmups else None,
            goodput=first.goodput,
            started_s=first.started_s,
            finished_s=runs[-1].finished_s,
        )

    @property
    def reported(self) -> list[WindowRecord]:
        """The windows the level's figures come from: the last K (all of them if fewer)."""
        return self.windows[-self.stability_windows :]

    def merged(self) -> WindowStats:
        return merge_stats([w.stats for w in self.reported])

    def silent_windows(self) -> list[WindowStats]:
        """Windows in which no request succeeded though others of the level did: the server stalled.

        A reported one counts when nothing in it succeeded (its figures would average over the stall);
        an earlier one, or one of a trace (which may be quiet by design), when its requests failed too.
        """
        if not self.merged().completed:
            return []  # nothing succeeded in the reported windows: said as a failed level, not a stall
        reported = {id(window) for window in self.reported}
        return [
            w.stats
            for w in self.windows
            if not w.stats.completed and (w.stats.error_count or (id(w) in reported and self.trace is None))
        ]

    def server(self, model: str | None = None) -> server_stats.ServerDelta | None:
        name = model or self.target_model
        return server_stats.merge_deltas([w.server[name] for w in self.reported if name in w.server])

    def cpu_us_per_request(self) -> float:
        completed = sum(w.stats.completed + w.stats.error_count for w in self.reported)
        cpu = sum(w.cpu_ns for w in self.reported)
        return cpu / completed / 1000 if completed else 0.0

    def shares(self) -> list[ProcessShare]:
        """Each load process's part of the reported windows (empty for a run in one process)."""
        totals: dict[int, ProcessShare] = {}
        for window in self.reported:
            for share in window.shares:
                known = totals.get(share.index)
                totals[share.index] = share if known is None else known.add(share)
        return [totals[index] for index in sorted(totals)]

    def metrics(self) -> dict[str, float]:
        values = [w.metrics for w in self.reported if w.metrics]
        keys = {key for value in values for key in value}
        return {key: sum(v.get(key, 0.0) for v in values) / len(values) for key in sorted(keys)}

    def model_names(self) -> list[str]:
        """The models loaded together at this level (empty for a run of one model)."""
        return list(self.windows[0].parts) if self.windows else []

    def for_model(self, name: str, level: float, composing: tuple[str, ...] = ()) -> LevelResult:
        """One model's part of this level, from the same windows and server snapshots.

        The server figures kept are the model's and (an ensemble) its composing models'. Its windows
        carry no client CPU: the models share one process, so the CPU is not theirs alone (the
        combined level has it).
        """
        part = LevelResult(
            self.load_kind,
            level,
            stable=self.stable,
            target_model=name,
            stability_windows=self.stability_windows,
            server_unmeasured=self.server_unmeasured,
        )
        for window in self.windows:
            server = {model: delta for model, delta in window.server.items() if model in (name, *composing)}
            part.windows.append(
                WindowRecord(
                    window.parts[name], server, None, 0, window.drained, server_read_lag_ns=window.server_read_lag_ns
                )
            )
        part.warnings = _foreign_load_warning(part)
        return part


class Sweeper:
    """Drives one load (in this process or spread over several) through load levels and measures each."""

    def __init__(
        self,
        make_load: Callable[[], WindowedLoad],
        stats_client: InferenceClient,
        model_names: list[str],
        settings: MeasureSettings,
        metrics_url: str | None = None,
        on_window: Callable[[LevelResult, WindowRecord], None] | None = None,
        statistics_missing: str = "",
        metrics_missing: str = "",
    ) -> None:
        """``statistics_missing``: why the server's statistics cannot be read (an absent extension);
        ``metrics_missing``: why there is no ``metrics_url`` to scrape."""
        self.make_load = make_load
        self.statistics_missing = statistics_missing
        self.metrics_missing = metrics_missing
        self.statistics_failure = ""  # the last reason a read of the statistics failed
        self.stats_client = stats_client
        self.model_names = model_names
        self.settings = settings
        self.metrics_url = metrics_url
        self.on_window = on_window
        self.server_watch = ServerWatch(stats_client)

    def _snapshot(self) -> dict[str, server_stats.ModelCounters]:
        if self.statistics_missing:
            return {}
        try:
            return server_stats.snapshot(self.stats_client, self.model_names)
        except Exception as exc:  # a server that stopped answering: keep measuring the client side
            self.statistics_failure = str(exc) or type(exc).__name__
            return {}

    def _settled_snapshot(
        self, before: dict[str, server_stats.ModelCounters], closing: ClosedWindow
    ) -> dict[str, server_stats.ModelCounters]:
        """After a drain: the server's counters once they include every request we completed.

        Triton counts a request when it releases it, which can be a moment after the client has
        the response; in a drained window the server can never have fewer successes than we
        completed, so a shortfall is that lag, and reading again (briefly) closes it. With several
        models, each model's count is awaited.
        """
        completed = {name: stats.completed for name, stats in closing.parts.items()}
        completed = completed or {self.model_names[0]: closing.stats.completed}
        deadline = time.monotonic() + self.settings.settle_timeout_s
        while True:
            after = self._snapshot()
            if not before or any(name not in after or name not in before for name in completed):
                return after
            counted = {
                name: after[name].counts.get("success", 0) - before[name].counts.get("success", 0) for name in completed
            }
            if all(counted[name] >= done for name, done in completed.items()) or time.monotonic() >= deadline:
                return after
            time.sleep(0.002)

    def run_level(
        self, load_kind: str, level: float, schedule: ScheduleSpec | None = None, max_inflight: int = 0
    ) -> LevelResult:
        settings = self.settings
        result = LevelResult(
            load_kind,
            level,
            target_model=self.model_names[0],
            stability_windows=settings.stability.windows,
            goodput=settings.goodput,
        )
        result.started_s = time.time()
        trace = schedule.trace if schedule is not None else None
        once = trace is not None and not trace.loop  # windows until it is replayed; all of them reported
        load = self.make_load()
        closed = load_kind == "concurrency"
        drain = closed and settings.drain
        unloaded = self._snapshot() if drain or once else {}
        finish_within: float | None = None  # the server is still there: live sequences get their END first
        try:
            if closed:
                load.start_closed(int(level))
            else:
                assert schedule is not None
                load.start_open(schedule, max_inflight)
            warm = self._warm_up(load, result, drain)
            result.warmup = warm.stats
            # taken while drained (closed loop), once the server counted the warm-up: it matches the window start;
            # a trace's first sends go out as the window opens, so its server counts start before the load
            if warm.drained:
                before = self._settled_snapshot(unloaded, warm)
            else:
                before = unloaded if once and not warm.stats.completed else self._snapshot()
            load.open_window(resume=drain)
            for _ in range(settings.max_trials):
                self._wait_window(load, result, until_replayed=once)
                replayed = once and load.health().replayed  # read before the close: nothing can land after it
                closing = load.close_window(drain, settings.drain_timeout_s, lambda: self._cut_short(load))
                closed_ns = time.perf_counter_ns()
                self._stop_if_needed(load, result)
                stats = closing.stats
                if replayed and result.windows and not stats.completed and not stats.error_count:
                    break  # the trace's last answer came just after the previous window closed: nothing here
                after = self._settled_snapshot(before, closing) if closing.drained else self._snapshot()
                read_lag_ns = 0 if closing.drained else time.perf_counter_ns() - closed_ns
                scraped = prometheus.scrape(self.metrics_url) if self.metrics_url else None
                record = WindowRecord(
                    stats,
                    server_stats.delta(before, after) if before and after else {},
                    scraped,
                    closing.cpu_ns,
                    closing.drained,
                    closing.shares,
                    closing.parts,
                    read_lag_ns,
                )
                before = after
                result.windows.append(record)
                self._check_workers(load, result)
                latencies = [w.latency_value(settings.stability.latency_key) for w in result.windows]
                throughputs = [w.stats.throughput(settings.batch_size) for w in result.windows]
                result.stable = settings.stability.is_stable(throughputs, latencies)
                if self.on_window:
                    self.on_window(result, record)
                if self._level_done(result, once, replayed) or len(result.windows) == settings.max_trials:
                    break  # a drained load stays paused: nothing is sent that no window would report
                load.open_window(resume=drain)
            if trace is not None:
                self._trace_progress(result, trace.offsets_ns, load.health(), once)
            finish_within = settings.finish_timeout_s
        except KeyboardInterrupt:
            finish_within = settings.interrupted_finish_s
            raise
        finally:
            if finish_within is not None:
                self._let_answers_come(load, finish_within)
            if not load.stop(finish_within):
                result.warnings.append("some workers did not stop in time (requests still outstanding)")
        result.finished_s = time.time()
        self._diagnose(result, load_kind == "rate", schedule_rate=level if trace is None else None)
        return result

    @staticmethod
    def _level_done(result: LevelResult, once: bool, replayed: bool) -> bool:
        """Whether the windows so far end the level: stable, a trace replayed once, or nothing succeeding."""
        if once:
            return replayed
        if result.stable:
            return True
        # nothing succeeds: more windows will not change that
        return len(result.windows) >= 2 and all(w.stats.completed == 0 for w in result.windows[-2:])

    def _let_answers_come(self, load: WindowedLoad, timeout_s: float) -> None:
        """Before the workers stop, with the server still there: let the requests in flight come back.

        Stopping abandons a request in flight, which cancels it on the wire, and Triton before 24.12
        (2.51 included) can crash on a unary gRPC request cancelled as it completes
        (triton-inference-server/server #7368). Unrecorded: the level's windows are closed already.
        """
        with contextlib.suppress(PerfprobeError):  # a load process lost meanwhile: stopping says what is left
            load.close_window(True, timeout_s, lambda: self._cut_short(load))

    @staticmethod
    def _trace_progress(result: LevelResult, offsets: tuple[int, ...], health: LoadHealth, once: bool) -> None:
        """How much of the trace the level replayed; a trace replayed once reports every window."""
        sent = health.sends_made
        result.trace = {"requests": len(offsets), "sent": sent, "replayed": sent / len(offsets), "loop": not once}
        if once:
            result.stability_windows = max(len(result.windows), 1)
            if not health.replayed:
                result.warnings.append(
                    f"replayed {sent} of the trace's {len(offsets)} requests ({sent / len(offsets):.0%}) "
                    "before the level ended (raise --max-trials or --measurement-interval for all of it)"
                )

    @staticmethod
    def _check_workers(load: WindowedLoad, result: LevelResult) -> None:
        """A worker that ended early would make the level understate the load asked for: stop loudly."""
        failures = load.health().worker_failures
        if failures:
            where = f"{result.load_kind} {result.level:g}"
            raise LoadFailed(f"load stopped at {where}: {failures[0]} (a bug in perfprobe)")

    def _warm_up(self, load: WindowedLoad, result: LevelResult, drain: bool) -> ClosedWindow:
        settings = self.settings
        deadline = time.monotonic() + max(settings.warmup_s, 0.0)
        while time.monotonic() < deadline:
            load.sleep(0.01)
            self._stop_if_needed(load, result)
        if settings.warmup_requests:
            limit = time.monotonic() + settings.count_window_timeout_s
            while load.finished_in_window() < settings.warmup_requests and time.monotonic() < limit:
                load.sleep(max(load.poll_s, 0.002))
                self._stop_if_needed(load, result)
        # drained (closed loop) for the caller's snapshot; the warm-up's results are not reported
        warm = load.close_window(drain, settings.drain_timeout_s, lambda: self._cut_short(load))
        self._stop_if_needed(load, result)
        return warm

    def _wait_window(self, load: WindowedLoad, result: LevelResult, until_replayed: bool = False) -> None:
        """Until the window's time or request count is reached, or (a trace replayed once) the trace is done."""
        settings = self.settings
        if settings.count_mode:
            limit = time.monotonic() + settings.count_window_timeout_s
            while load.finished_in_window() < settings.window_requests and time.monotonic() < limit:
                load.sleep(load.poll_s)
                self._stop_if_needed(load, result)
            return
        end = load.window_started_ns() + settings.window_ms * 1_000_000
        while (remaining := end - time.perf_counter_ns()) > 0:
            load.sleep(min(remaining / 1e9, 0.05))
            self._stop_if_needed(load, result)
            if until_replayed and load.health().replayed:
                return

    def _cut_short(self, load: WindowedLoad) -> bool:
        """Whether waiting (for a drain) is pointless: a worker caught an interrupt, or the server is gone."""
        health = load.health()
        return health.interrupted or self.server_watch.gone(health.connection_failures)

    def _stop_if_needed(self, load: WindowedLoad, result: LevelResult) -> None:
        """Raise what ends the level now: an interrupt a worker caught, or a server that is gone."""
        health = load.health()
        if health.interrupted:
            raise KeyboardInterrupt  # caught by a worker greenlet: raised here, where the run can stop
        if self.server_watch.gone(health.connection_failures):
            raise ServerUnreachable(
                f"the server stopped answering at {result.load_kind} {result.level:g} "
                f"({health.connection_failures} requests found no server); earlier levels are kept"
            )

    def _diagnose(self, result: LevelResult, open_loop: bool, schedule_rate: float | None) -> None:
        """Warnings for the level; ``schedule_rate`` None in open loop: a trace, whose rate varies by design."""
        if not result.windows:
            return
        merged = result.merged()
        seconds = merged.duration_ns / 1e9
        self._client_cpu(result, merged)
        if open_loop and seconds > 0:
            finished = merged.completed + merged.error_count
            achieved = finished / seconds
            late_share = merged.late_sends / finished if finished else 0.0
            short = schedule_rate is not None and achieved < 0.95 * schedule_rate
            lateness = f"{merged.late_sends} late sends, worst lag {merged.max_lag_ns / 1e6:.1f} ms"
            if short:
                result.warnings.append(
                    f"client could not keep {schedule_rate:g} req/s: achieved {achieved:.1f}/s, {lateness}"
                )
            elif schedule_rate is None and late_share > self.settings.late_warning:
                # a trace's rate varies by design: what can be told is how many of its sends were late
                result.warnings.append(
                    f"client fell behind the trace at times: {late_share:.1%} of sends late ({lateness})"
                )
            elif late_share > self.settings.late_warning:  # the rate was held, not every send's time
                result.warnings.append(
                    f"client fell behind schedule at times: {late_share:.1%} of sends late "
                    f"({lateness}); {achieved:.1f} of {schedule_rate:g} req/s achieved"
                )
        if any(d.reset for w in result.windows for d in w.server.values()):
            result.warnings.append(
                "server counters went backwards (model reloaded?): affected windows use the new counts"
            )
        if merged.error_count and not merged.completed:
            result.warnings.append("no successful request: the level has no latency figures")
        if silent := result.silent_windows():
            codes = error_codes(merge_stats(silent).errors) or "no answer in the window"
            result.warnings.append(
                f"no request succeeded in window {', '.join(str(w.index) for w in silent)} ({codes})"
            )
        self._server_unmeasured(result)
        if self.metrics_missing:
            result.warnings.append(f"server CPU not measured: {self.metrics_missing}")
        if merged.errors:
            codes = error_codes(merged.errors)
            reasons = merged.top_reasons()
            said = f" (most frequent reason: {reasons[0][0]}: {reasons[0][1]})" if reasons else ""
            result.warnings.append(f"errors: {codes}{said}")
        self._unreported_errors(result)
        if merged.resent:
            result.warnings.append(
                f"{merged.resent} requests were sent twice after a stale kept-alive connection "
                "(the server may have executed both)"
            )
        if merged.dropped:
            result.warnings.append(f"{merged.dropped} late answers to timed-out requests were dropped")
        self._foreign_load(result)

    @staticmethod
    def _unreported_errors(result: LevelResult) -> None:
        """Errors in the warm-up or in windows before the reported ones: not in the level's figures, but said."""
        reported = {id(window) for window in result.reported}
        unreported = [w.stats for w in result.windows if id(w) not in reported]
        if result.warmup is not None:
            unreported.append(result.warmup)
        outside = merge_stats(unreported) if unreported else None
        if outside is not None and outside.error_count:
            result.warnings.append(
                f"{outside.error_count} errors outside the reported windows (warm-up and earlier windows): "
                f"{error_codes(outside.errors)}"
            )

    def _server_unmeasured(self, result: LevelResult) -> None:
        """A level without the server's statistics says why; its server figures stay empty."""
        if any(result.target_model in w.server for w in result.reported):
            return
        if self.statistics_missing:
            reason = self.statistics_missing
        elif self.statistics_failure:
            reason = f"the server's statistics could not be read ({self.statistics_failure})"
        else:
            reason = f"the server's statistics did not include {result.target_model}"
        result.server_unmeasured = reason
        result.warnings.append(f"server figures not measured: {reason}")

    def _client_cpu(self, result: LevelResult, merged: WindowStats) -> None:
        """Warn when a load process used most of its core: then perfprobe, not the server, may set the pace."""
        limit = self.settings.client_cpu_warning
        shares = result.shares()
        if not shares:
            cpu_share = sum(w.cpu_ns for w in result.reported) / merged.duration_ns if merged.duration_ns else 0.0
            if cpu_share >= limit:
                result.warnings.append(
                    f"client CPU at {cpu_share:.0%} of one core: perfprobe itself may be the bottleneck "
                    "(add processes: --processes)"
                )
            return
        busy = [share for share in shares if share.cpu_share >= limit]
        if busy:
            named = ", ".join(f"{share.index} ({share.cpu_share:.0%})" for share in busy)
            result.warnings.append(
                f"load processes near a full core: {named}; perfprobe itself may be the bottleneck (add processes)"
            )

    @staticmethod
    def _foreign_load(result: LevelResult) -> None:
        if not result.model_names():  # several models: each model's part says it (LevelResult.for_model)
            result.warnings += _foreign_load_warning(result)


def error_codes(errors: dict[str, int]) -> str:
    """Error counts by code, as the level's warnings list them: ``HTTP 400 x3, TIMEOUT x1``."""
    return ", ".join(f"{code} x{count}" for code, count in sorted(errors.items()))


NOT_ANSWERED = CONNECTION_FAILURES | MAYBE_SERVED | {"NO_RESPONSE"}  # error codes of requests no answer came back for


def _foreign_load_warning(result: LevelResult) -> list[str]:
    """A warning when the server counted more successes than we completed: someone else is loading it."""
    windows = [w for w in result.reported if result.target_model in w.server]
    if not windows:
        return []
    server = sum(w.server[result.target_model].success_count for w in windows)
    # a request we gave up on (TIMEOUT) or whose answer the network cut (RESET, TRUNCATED) may still have
    # succeeded on the server, in this window or the next
    maybe_served = sum(w.stats.errors.get(code, 0) for w in windows for code in MAYBE_SERVED)
    ours = sum(w.stats.completed + w.stats.resent for w in windows) + maybe_served
    in_flight_bound = result.level if result.load_kind == "concurrency" else 0.0
    slack = in_flight_bound if maybe_served else 0.0
    if not all(w.drained for w in windows):
        # undrained boundaries, the first and the last: the requests in flight at each (a high estimate)
        # may be counted on either side, and those completed before the server's counters were read
        # are on the server's side only
        merged = merge_stats([w.stats for w in windows])
        rate = merged.throughput()
        in_flight = rate * merged.latency.percentile_us(99) / 1e6
        read_lag_s = max(w.server_read_lag_ns for w in windows) / 1e9
        slack = max(in_flight, in_flight_bound) + 2 * rate * read_lag_s + 1
    excess = server - ours
    if excess <= slack:
        return []
    # a backend that reports an error inside its response (Triton's python backend) has the request
    # counted as a success: those answers account for up to this many of the server's successes
    answered_errors = sum(count for w in windows for code, count in w.stats.errors.items() if code not in NOT_ANSWERED)
    if excess <= answered_errors + slack:
        return [
            f"the server counted as successful {excess} requests it answered with an error (the model "
            "reports errors inside its responses): the server-side figures include them"
        ]
    return [
        f"the server counted {excess} more successful requests than perfprobe completed: another "
        "client is loading this model, so the server-side figures include its requests"
    ]
