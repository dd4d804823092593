"""Faults, round two (issue 26): numbers that are not numbers, ranges that never end, ports that wrap.

Each case failed on 4d4cb8b: NaN limits passed a gate, ``--request-rate inf`` looped forever, a
``--concurrency`` range of ten billion levels grew memory without bound, and port 99999 connected to
another port. Every one is now refused before any load, with one line and exit 2.
"""

from __future__ import annotations

import time

import pytest
from conftest import run_perfprobe

from perfprobe import exitcodes
from perfprobe.errors import UsageError
from perfprobe.gates import baseline, thresholds
from perfprobe.load.ranges import parse_range
from perfprobe.runs.options import SweepOptions
from perfprobe.runs.plan import plan


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"request_rate": "nan"}, "finite"),
        ({"request_rate": "inf"}, "finite"),
        ({"request_rate": "1:inf"}, "finite"),
        ({"concurrency": "1:10000000000"}, "at most 100000 requests in flight"),
        ({"request_rate": "1:1000000:0.01"}, "more than 10000 levels"),
        ({"concurrency": "1:8:xinf"}, "multiplying step"),
        ({"concurrency": "1", "request_timeout": float("inf")}, "--request-timeout must be a finite number"),
        ({"concurrency": "1", "request_timeout": float("nan")}, "--request-timeout must be a finite number"),
        ({"concurrency": "1", "late_threshold": -1.0}, "--late-threshold cannot be negative"),
        ({"concurrency": "1", "trace_speedup": float("inf")}, "--trace-speedup must be a finite number"),
        ({"concurrency": "1", "stability_percentage": float("nan")}, "--stability-percentage must be a finite"),
        ({"concurrency": "1", "sequence_length_variation": 150.0}, "between 0 and 100"),
        ({"concurrency": "1", "url": "127.0.0.1:99999"}, "port must be a number from 1 to 65535"),
        ({"concurrency": "1", "url": "ftp://127.0.0.1:8000"}, "scheme must be one of"),
    ],
)
def test_numbers_and_addresses_that_cannot_be_used_are_refused(options: dict, says: str) -> None:
    started = time.monotonic()
    with pytest.raises(UsageError, match=says.replace("(", r"\(")):
        plan(SweepOptions(model="simple", **options))
    assert time.monotonic() - started < 5  # refused, not expanded first


def test_a_range_is_refused_before_it_is_expanded() -> None:
    with pytest.raises(UsageError, match="at most 1e\\+07 requests per second"):
        parse_range("1:1e12", "--request-rate", integer=False, minimum=1e-6)
    assert parse_range("1:32:x2", "--concurrency", integer=True, minimum=1) == [1, 2, 4, 8, 16, 32]


@pytest.mark.parametrize("spec", ["throughput=nan%", "p99=inf", "throughput=-5%", "p99=nan"])
def test_a_regression_limit_must_be_a_finite_percentage(spec: str) -> None:
    with pytest.raises(thresholds.BadExpression, match="finite, non-negative"):
        baseline.parse_limits(spec)


@pytest.mark.parametrize("text", ["p99<nan", "p99<infms", "throughput>inf", "error_rate<nan%"])
def test_a_threshold_must_be_a_finite_number(text: str) -> None:
    with pytest.raises(thresholds.BadExpression, match="finite"):
        thresholds.parse(text)


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "-m", "simple", "--request-rate", "inf"],
        ["sweep", "-m", "simple", "-u", "127.0.0.1:99999"],
        ["describe", "-m", "simple", "-u", "127.0.0.1:99999"],
    ],
)
def test_the_command_line_says_so_in_one_line(args: list[str]) -> None:
    result = run_perfprobe(*args, timeout=60)
    assert result.returncode == exitcodes.USAGE, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("perfprobe: error: ")


def test_a_level_where_every_request_failed_has_no_latency_not_zero(tmp_path) -> None:
    import json

    import pandas as pd

    import perfprobe
    from perfprobe.report.build import write_report

    fake_toy_transport = pytest.importorskip("fake_toy_transport")
    fake_toy_transport.SERVER.refusing = True
    try:
        with pytest.raises(perfprobe.AllRequestsFailed) as failed:
            perfprobe.sweep(
                "fake_echo", protocol="toy", concurrency="1", measurement_interval=200, output_dir=str(tmp_path)
            )
    finally:
        fake_toy_transport.SERVER.refusing = False
    assert failed.value.result is not None
    row = pd.read_csv(tmp_path / "results.csv", keep_default_na=False).iloc[0]
    assert int(row["Errors"]) > 0 and int(row["Completed"]) == 0
    for column in ("p50 latency", "p99 latency", "Avg latency", "Min latency", "Max latency", "Client Send"):
        assert row[column] == "", column  # absent, never 0 µs
    assert "no successful request" in row["Warnings"]
    assert json.loads((tmp_path / "results.json").read_text())["levels"][0]["row"]["p99 latency"] == ""
    write_report(tmp_path)  # charts and summary are written around the gap
    summary = (tmp_path / "summary.md").read_text()
    assert "0 µs" not in summary


def test_an_unstable_level_is_said_when_it_ends_and_by_diff_and_gate(tmp_path, capsys) -> None:
    import perfprobe
    from perfprobe.commands.console import ConsoleObserver

    pytest.importorskip("fake_toy_transport")
    runs = []
    for name in ("a", "b"):  # windows never agree within 0.0001%: the level gives up after 3
        result = perfprobe.sweep(
            "fake_echo",
            protocol="toy",
            concurrency="2",
            measurement_interval=100,
            stability_percentage=0.0001,
            max_trials=3,
        )
        assert result.document["levels"][0]["stable"] is False
        runs.append(result.save(tmp_path / name))
    ConsoleObserver().level_done(result.level_results[0])
    assert "unstable: level 2 gave up after 3 windows" in capsys.readouterr().out
    diff = run_perfprobe("diff", str(runs[0]), str(runs[1]), "--output-dir", str(tmp_path / "diff"), timeout=120)
    assert diff.returncode == 0, diff.stderr
    assert "note: A (a) did not stabilise at c=2" in diff.stdout and "note: B (b)" in diff.stdout
    gate = run_perfprobe("gate", str(runs[1]), "-t", "throughput>1", "--baseline", str(runs[0]), timeout=120)
    assert "note: the run (b) did not stabilise at c=2" in gate.stdout
    assert "note: the baseline (a) did not stabilise at c=2" in gate.stdout


def test_http_pointed_at_the_grpc_port_says_use_grpc_in_one_line(server) -> None:
    result = run_perfprobe("describe", "-m", "simple", "-u", server.grpc_url, timeout=60)
    assert result.returncode == exitcodes.USAGE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "use -i grpc" in lines[0], result.stderr


def test_grpc_pointed_at_the_http_port_says_use_http_in_one_line(server, tmp_path) -> None:
    result = run_perfprobe(
        "sweep", "-i", "grpc", "-m", "simple", "-u", server.http_url, "--output-dir", str(tmp_path), timeout=60
    )
    assert result.returncode == exitcodes.USAGE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "answers in HTTP/1.1, not gRPC" in lines[0] and "use -i http" in lines[0]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_no_server_at_the_address_says_how_to_start_one(protocol: str) -> None:
    from perfprobe.server.launcher import free_ports

    nobody = f"127.0.0.1:{free_ports(1)[0]}"
    result = run_perfprobe("describe", "-i", protocol, "-m", "simple", "-u", nobody, timeout=60)
    assert result.returncode == exitcodes.SERVER_UNREACHABLE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "`perfprobe serve` starts one, or add --serve" in lines[0], result.stderr


def test_a_misspelled_flag_names_the_nearest_option() -> None:
    result = run_perfprobe("sweep", "-m", "simple", "--concurency", "2", "--measurment-interval=3", timeout=60)
    assert result.returncode == exitcodes.USAGE
    assert result.stderr.strip().endswith("(did you mean --concurrency, --measurement-interval?)"), result.stderr


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_model_the_server_lacks_is_named_with_the_models_it_has(server, tmp_path, protocol: str) -> None:
    result = run_perfprobe(
        "sweep", "-i", protocol, "-u", server.url(protocol), "-m", "resnet5", "--output-dir", str(tmp_path), timeout=60
    )
    assert result.returncode == exitcodes.SERVER_ERROR, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "resnet5" in lines[0] and "the server has:" in lines[0], result.stderr
    assert "simple" in lines[0].split("the server has:")[1]


def test_a_model_unloaded_mid_sweep_fails_the_run_and_keeps_every_level(server, tmp_path) -> None:
    """Item 4: later levels where every request failed (the model went away) end in exit 4, not 0."""
    import perfprobe
    from perfprobe.client import make_client
    from perfprobe.runs.observer import RunObserver

    class UnloadAfterFirstLevel(RunObserver):
        def __init__(self) -> None:
            self.levels = 0

        def level_done(self, level) -> None:  # between levels: no request of ours is in flight
            self.levels += 1
            if self.levels == 1:
                control.unload_model("bytes_echo")

    with make_client("http", server.http_url) as control:
        try:
            with pytest.raises(perfprobe.AllRequestsFailed) as failed:
                perfprobe.sweep(
                    "bytes_echo",
                    url=server.http_url,
                    shape=["INPUT0:4"],
                    concurrency="1:3",
                    measurement_interval=300,
                    max_trials=3,
                    output_dir=str(tmp_path),
                    no_report=True,
                    observer=UnloadAfterFirstLevel(),
                )
        finally:
            control.load_model("bytes_echo")
    message = str(failed.value)
    assert message.startswith("every request failed at c=2, c=3 (")
    assert "bytes_echo is no longer ready on the server" in message
    assert failed.value.exit_code == exitcodes.SERVER_ERROR
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert len(rows) == 4  # the header and all three levels


def test_metrics_of_another_server_are_not_reported_as_this_ones(server, tmp_path) -> None:
    """Item 7: a metrics page that does not count the measured model is another server's: CPU left empty, said why."""
    import http.server
    import json
    import threading

    class FakeOtherMetrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = b'nv_cpu_utilization 0.5\nnv_inference_count{model="someone_elses",version="1"} 7\n'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    decoy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeOtherMetrics)
    threading.Thread(target=decoy.serve_forever, daemon=True).start()
    decoy_url = f"http://127.0.0.1:{decoy.server_address[1]}/metrics"
    common = ("sweep", "-m", "simple", "-u", server.http_url, "--concurrency", "1", "--measurement-interval", "300")
    try:
        wrong = run_perfprobe(*common, "--metrics-url", decoy_url, "--output-dir", str(tmp_path / "wrong"), timeout=120)
    finally:
        decoy.shutdown()
    assert wrong.returncode == 0, wrong.stderr
    row = json.loads((tmp_path / "wrong" / "results.json").read_text())["levels"][0]["row"]
    assert row["Server CPU Util"] == ""
    assert f"server CPU not measured: the metrics at {decoy_url} do not count simple" in row["Warnings"]
    right = run_perfprobe(*common, "--metrics-url", server.metrics_url, "--output-dir", str(tmp_path / "right"))
    assert right.returncode == 0, right.stderr
    row = json.loads((tmp_path / "right" / "results.json").read_text())["levels"][0]["row"]
    assert row["Server CPU Util"] != "" and "server CPU not measured" not in row["Warnings"]


def test_a_full_disk_mid_run_leaves_results_whole_and_consistent(server, tmp_path) -> None:
    """Item 13: a file-size limit stands in for a full disk; the write fails with EFBIG as it would with ENOSPC."""
    import json
    import resource
    import subprocess

    from conftest import perfprobe_command

    out = tmp_path / "run"

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, 16_000))  # two or three levels' results.json

    done = subprocess.run(
        perfprobe_command(
            "sweep", "-u", server.http_url, "-m", "simple", "--concurrency", "1:8", "--measurement-interval", "200",
            "--max-trials", "3", "--no-report", "--output-dir", str(out),
        ),
        capture_output=True, text=True, timeout=240, check=False, preexec_fn=small_disk,
    )  # fmt: skip
    assert done.returncode == exitcodes.USAGE, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"perfprobe: error: cannot write results to {out}: File too large")
    assert sorted(path.name for path in out.iterdir()) == ["results.csv", "results.json"]  # no temporary left
    levels = json.loads((out / "results.json").read_text())["levels"]
    csv_rows = (out / "results.csv").read_text().splitlines()[1:]
    assert 1 <= len(levels) < 8 and len(csv_rows) == len(levels)


def test_the_output_directory_removed_mid_run_is_said_not_passed_over(server, tmp_path) -> None:
    """Item 8: results.csv/json come back whole; requests.jsonl cannot, so the run stops in one line (exit 2)."""
    import shutil
    import subprocess
    import time

    from conftest import perfprobe_command

    out = tmp_path / "run"
    process = subprocess.Popen(
        perfprobe_command(
            "sweep", "-u", server.http_url, "-m", "simple", "--concurrency", "1:4", "--measurement-interval", "400",
            "--max-trials", "3", "--no-report", "--export-requests", "--output-dir", str(out),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out / "requests.jsonl").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    shutil.rmtree(out)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == exitcodes.USAGE, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "requests.jsonl was removed mid-run" in lines[0], stderr
    assert len((out / "results.csv").read_text().splitlines()) >= 3  # rewritten whole: the header and two levels


def test_answers_cut_short_by_the_network_have_their_own_code_and_blame_no_other_client(server, tmp_path) -> None:
    """Item 6: TRUNCATED, not UNREACHABLE, and the server's extra successes are not another client's load."""
    import json

    from relay import Relay

    host, port = server.http_url.rsplit(":", 1)
    relay = Relay((host, int(port)), cut_after=150)  # inside the first answer of every other connection
    try:
        done = run_perfprobe(
            "sweep", "-u", f"127.0.0.1:{relay.port}", "-m", "simple", "--concurrency", "2",
            "--measurement-interval", "500", "--max-trials", "3", "--workers", "thread", "--warmup-seconds", "0",
            "--output-dir", str(tmp_path), "--no-report", timeout=120,
        )  # fmt: skip
    finally:
        relay.close()
    assert done.returncode == 0, done.stderr
    level = json.loads((tmp_path / "results.json").read_text())["levels"][0]
    codes = {code for window in level["windows"] for code in window["errors"]}
    assert codes == {"TRUNCATED"}, codes
    warnings = level["row"]["Warnings"]
    assert "TRUNCATED x" in warnings and "another client" not in warnings and "UNREACHABLE" not in warnings


def test_after_failed_levels_a_silent_server_is_not_said_to_have_lost_the_model() -> None:
    """A frozen server (requests timing out, readiness unanswered) is said to not answer, not to have lost the model."""
    from perfprobe.client import InferenceServerError
    from perfprobe.runs.sweep import _model_state

    class FakeFrozenServer:
        def is_model_ready(self, name: str) -> bool:
            raise InferenceServerError("no answer in time", failure="TIMEOUT")

    class FakeUnloadedServer:
        def is_model_ready(self, name: str) -> bool:
            return False

    assert _model_state(FakeFrozenServer(), "simple") == "the server does not answer"  # type: ignore[arg-type]
    assert _model_state(FakeUnloadedServer(), "simple") == "simple is no longer ready on the server"  # type: ignore[arg-type]


def test_a_probe_that_times_out_is_a_stalled_server_not_a_gone_one() -> None:
    """The liveness probe behind "the server stopped answering" (exit 3): a refused probe means gone, one
    that gets no answer in time means stalled (the windows name a stall, exit 4). CI once saw a frozen gRPC
    server reported as gone."""
    from perfprobe.client.errors import TIMEOUT, UNREACHABLE, InferenceServerError
    from perfprobe.load.liveness import ServerWatch

    class FakeProbedServer:
        def __init__(self, failure: str | None) -> None:
            self.failure = failure

        def is_server_live(self) -> bool:
            if self.failure:
                raise InferenceServerError("no", failure=self.failure)
            return True

    assert ServerWatch(FakeProbedServer(UNREACHABLE)).gone(1) is True  # type: ignore[arg-type]
    assert ServerWatch(FakeProbedServer(TIMEOUT)).gone(1) is False  # type: ignore[arg-type]
    assert ServerWatch(FakeProbedServer(None)).gone(1) is False  # type: ignore[arg-type]
    assert ServerWatch(FakeProbedServer(UNREACHABLE)).gone(0) is False  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def freezable_server():
    """A server of these tests' own, to be stopped (SIGSTOP) and continued; shared by the protocols' cases."""
    from perfprobe.server import EmbeddedServer

    with EmbeddedServer(builtin_models=["simple"], pick_free_ports=True) as own:
        yield own


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_server_frozen_past_the_request_timeout_fails_the_run(freezable_server, tmp_path, protocol: str) -> None:
    """Item 4, second half: a server stopped (SIGSTOP) for five request timeouts inside a level that also had
    successes ends the run with exit 4 naming the stall, not exit 0 with a rate averaged over it."""
    import json
    import os
    import signal
    import threading

    import perfprobe
    from perfprobe.runs.observer import RunObserver

    class FreezeAfterFirstWindow(RunObserver):
        def __init__(self, pid: int) -> None:
            self.pid = pid
            self.thawed = threading.Event()

        def window(self, level, record) -> None:
            if level.level == 2 and len(level.windows) == 1:  # the level has measured successes before the stall
                os.killpg(self.pid, signal.SIGSTOP)
                threading.Timer(2.5, self.thaw).start()  # five request timeouts: several whole windows

        def thaw(self) -> None:
            os.killpg(self.pid, signal.SIGCONT)
            self.thawed.set()

    own = freezable_server
    assert own.pid is not None
    observer = FreezeAfterFirstWindow(own.pid)
    try:
        with pytest.raises(perfprobe.AllRequestsFailed) as failed:
            perfprobe.sweep(
                "simple",
                url=own.grpc_url if protocol == "grpc" else own.http_url,
                protocol=protocol,
                concurrency="2:4:2",
                request_timeout=0.5,
                measurement_interval=500,
                max_trials=8,
                output_dir=str(tmp_path),
                no_report=True,
                observer=observer,
            )
    finally:
        observer.thawed.wait(15)
    message = str(failed.value)
    assert message.startswith("no request succeeded for a whole window at c=2 ("), message
    assert "the server stalled" in message and "all levels are in the results" in message
    assert failed.value.exit_code == exitcodes.SERVER_ERROR
    levels = json.loads((tmp_path / "results.json").read_text())["levels"]
    assert [level["level"] for level in levels] == [2, 4]  # the level after the stall was measured too
    assert "no request succeeded in window" in levels[0]["row"]["Warnings"]


def test_a_free_ports_server_has_its_cpu_measured_from_the_url_alone(tmp_path) -> None:
    """Item 7: ``perfprobe serve --free-ports`` takes three ports in a row, as Triton's defaults are, so a sweep
    given only ``-u`` (HTTP or gRPC) finds the metrics by Triton's offset, checks they count the model, and
    reports the server's CPU."""
    import json
    import signal
    import subprocess

    from conftest import perfprobe_command

    serving = subprocess.Popen(
        perfprobe_command("serve", "--free-ports", "--builtin", "simple"), stdout=subprocess.PIPE, text=True
    )
    try:
        assert serving.stdout is not None
        printed: dict[str, str] = {}
        for line in serving.stdout:
            label, _, value = line.strip().partition(" ")
            printed[label] = value.strip()
            if label == "metrics":
                break
        http_url, grpc_url = printed["HTTP"].removeprefix("http://"), printed["gRPC"]
        for protocol, url in (("http", http_url), ("grpc", grpc_url)):
            out = tmp_path / protocol
            result = run_perfprobe(
                "sweep", "-i", protocol, "-u", url, "-m", "simple", "--concurrency", "1",
                "--measurement-interval", "300", "--no-report", "--output-dir", str(out),
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            row = json.loads((out / "results.json").read_text())["levels"][0]["row"]
            assert "server CPU not measured" not in row["Warnings"], row["Warnings"]
            assert row["Server CPU Util"] != ""
        assert printed["metrics"].endswith(f":{int(http_url.rsplit(':', 1)[1]) + 2}/metrics")
    finally:
        serving.send_signal(signal.SIGINT)
        serving.communicate(timeout=60)


def test_metrics_are_looked_for_at_triton_s_offset_then_at_8002() -> None:
    from perfprobe.measure.metrics import default_metrics_urls

    assert default_metrics_urls("127.0.0.1:9000", "http") == [
        "http://127.0.0.1:9002/metrics",
        "http://127.0.0.1:8002/metrics",
    ]
    assert default_metrics_urls("host:9001", "grpc")[0] == "http://host:9002/metrics"
    assert default_metrics_urls("https://host:8000/prefix", "http") == ["http://host:8002/metrics"]
    assert default_metrics_urls("host:65535", "http") == ["http://host:8002/metrics"]
