"""Fuzz every command's options, the YAML config's keys and the input file formats, in one process.

Run by tests/test_fuzz.py: ``python tests/fuzz_cli.py WORKDIR SERVER_HTTP_URL SEED DEAD_URL [--all]``
(the suite tries three values per option and YAML key, chosen by SEED; ``--all`` tries every one). Each case runs
``perfprobe.cli.run(argv)`` with stderr captured and prints one JSON line: the case, its exit code,
its stderr. Random values come from ``SEED``; the boundary values are always tried.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import shutil
import string
import sys
from collections.abc import Iterator
from pathlib import Path

BOUNDARY = ["", "0", "-1", "1", "nan", "inf", "-inf", "1e309", "99999999999999999999", "abc", ":", ",", "1:2:3:4",
            "x" * 300, "é", "-", "--", "0x10", "1.5", "true", "[]", "{}"]  # fmt: skip
# addresses that need no name lookup (nothing here may wait on DNS)
URLS = ["", ":", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:-1", "http://", "ftp://127.0.0.1:1", "[::1",
        "127.0.0.1:abc", "https://127.0.0.1:1/x", "127.0.0.1:1:2", "unix:///x"]  # fmt: skip
SKIPPED_OPTIONS = {
    "--cluster": "connects to a Ray cluster: tests/test_cluster.py checks its bad values",
    "--config": "fuzzed as YAML files below",
    "--url": "fuzzed with URLS (no name lookups)",
    "--metrics-url": "fuzzed with URLS",
}
SKIPPED_COMMANDS = {"serve": "starts a real server; tests/test_server.py checks its options"}


def _random_values(rng: random.Random, count: int) -> list[str]:
    alphabet = string.ascii_letters + string.digits + ":,.-=@/ %"
    values = []
    for _ in range(count):
        kind = rng.randrange(4)
        if kind == 0:
            values.append(str(rng.randint(-(10**12), 10**12)))
        elif kind == 1:
            values.append(repr(rng.uniform(-1e6, 1e6)))
        else:
            values.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24))))
    return values


def _parsers() -> dict[str, argparse.ArgumentParser]:
    from perfprobe.cli import build_parser

    top = build_parser()
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


def _some(values: list, rng: random.Random, count: int | None) -> list:
    """All of ``values``, or ``count`` of them chosen by ``rng`` (a suite run samples; ``--all`` tries all)."""
    return list(values) if count is None else rng.sample(list(values), min(count, len(values)))


def option_cases(
    work: Path, dead_url: str, rng: random.Random, per_option: int | None
) -> Iterator[tuple[str, list[str]]]:
    """Every value-taking option of every command, with boundary and random values."""
    run_dir = work / "run"
    bases = {
        "sweep": ["-m", "simple", "-u", dead_url, "--output-dir", str(work / "out")],
        "compare": ["-m", "simple", "-u", dead_url, "--output-dir", str(work / "out")],
        "describe": ["-m", "simple", "-u", dead_url],
        "infer": ["-m", "simple", "-u", dead_url],
        "models": ["-u", dead_url],
        "report": [str(run_dir)],
        "diff": [str(run_dir), str(run_dir)],
        "gate": [str(run_dir), "-t", "p99<1s"],
    }
    for command, parser in _parsers().items():
        if command in SKIPPED_COMMANDS:
            continue
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0 or isinstance(action, argparse._HelpAction):
                continue
            flag = action.option_strings[-1]
            if flag in SKIPPED_OPTIONS and flag not in ("--url", "--metrics-url"):
                continue
            values = URLS if flag in ("--url", "--metrics-url") else BOUNDARY + _random_values(rng, 6)
            values = _some(values, rng, per_option)
            base = list(bases[command])
            if flag == "--url":
                base = base[: base.index("-u")] + base[base.index("-u") + 2 :]
            for value in values:
                yield f"{command} {flag}={value!r}", [command, *base, f"{flag}={value}"]


WRONG_TYPES: list[object] = [None, True, [], [1, "a"], {"a": 1}, "abc", -1, 1e309, "", [[]], {"": None}]


def config_cases(work: Path, dead_url: str, rng: random.Random, per_key: int | None) -> Iterator[tuple[str, list[str]]]:
    """Every YAML key of a sweep config with values of the wrong type; broken files."""
    import dataclasses

    from perfprobe.runs.options import SweepOptions

    folder = work / "configs"
    folder.mkdir(exist_ok=True)
    documents: list[tuple[str, str]] = [("not yaml", "a: [1\n"), ("a list", "- 1\n"), ("a number", "7\n"),
                                        ("unknown key", "no_such_option: 1\n"), ("binary", "\x00\x01")]  # fmt: skip
    for field in dataclasses.fields(SweepOptions):
        for value in _some(WRONG_TYPES, rng, per_key):
            documents.append((f"{field.name}={value!r}", json.dumps({field.name: value})))
    for number, (name, text) in enumerate(documents):
        path = folder / f"c{number}.yaml"
        path.write_text(text, errors="surrogateescape")
        yield f"config {name}", ["sweep", "--config", str(path), "-m", "simple", "-u", dead_url]


def _data_documents() -> list[tuple[str, str]]:
    item = {"INPUT0": list(range(16)), "INPUT1": list(range(16))}
    return [
        ("not json", "{"),
        ("lone surrogate", '{"data": [{"INPUT0": ["\\ud800"], "INPUT1": [1]}]}'),
        ("lone surrogate key", '{"data": [{"\\udc00": [1]}]}'),
        ("data not a list", '{"data": "x"}'),
        ("empty", '{"data": []}'),
        ("item a number", '{"data": [7]}'),
        ("huge shape", json.dumps({"data": [{**item, "INPUT0": {"content": [1], "shape": [10**12, 10**12]}}]})),
        ("negative shape", json.dumps({"data": [{**item, "INPUT0": {"content": [1], "shape": [-1]}}]})),
        ("shape of strings", json.dumps({"data": [{**item, "INPUT0": {"content": [1], "shape": ["a"]}}]})),
        ("bad base64", json.dumps({"data": [{**item, "INPUT0": {"b64": "%%%"}}]})),
        ("nested objects", json.dumps({"data": [{**item, "INPUT0": [{"a": 1}] * 16}]})),
        ("floats for ints", json.dumps({"data": [{**item, "INPUT0": [0.5] * 16}]})),
        ("too big ints", json.dumps({"data": [{**item, "INPUT0": [2**70] * 16}]})),
        ("steps of nothing", '{"data": [[]]}'),
        ("a top-level list", "[1, 2]"),
    ]


def _trace_documents() -> list[tuple[str, str]]:
    return [
        ("not json lines", "{\n"),
        ("no timestamp", '{"x": 1}\n'),
        ("negative timestamp", '{"timestamp": -5}\n'),
        ("string timestamp", '{"timestamp": "a"}\n'),
        ("nan timestamp", '{"timestamp": NaN}\n'),
        ("huge timestamp", '{"timestamp": 1e309}\n'),
        ("lone surrogate", '{"timestamp": 1, "sequence_id": "\\ud800"}\n'),
        ("empty", ""),
        ("a list", "[1]\n"),
    ]


def _interval_documents() -> list[tuple[str, str]]:
    return [("empty", ""), ("words", "a\nb\n"), ("negative", "-5\n"), ("zero", "0\n0\n"), ("nan", "nan\n"),
            ("huge", "1e309\n"), ("binary", "\x00\xff"), ("comma list", "1,2,3\n")]  # fmt: skip


def file_cases(work: Path, live_url: str) -> Iterator[tuple[str, list[str]]]:
    """Input data, trace and interval files against a real server (the run must get as far as reading them)."""
    folder = work / "files"
    folder.mkdir(exist_ok=True)
    quick = ["-m", "simple", "-u", live_url, "--concurrency", "1", "--measurement-interval", "50", "--max-trials",
             "1", "--no-report", "--output-dir", str(work / "file-out")]  # fmt: skip
    for number, (name, text) in enumerate(_data_documents()):
        path = folder / f"data{number}.json"
        path.write_text(text)
        yield f"--input-data {name}", ["sweep", *quick, "--input-data", str(path)]
    rate = ["-m", "simple", "-u", live_url, "--measurement-interval", "50", "--max-trials", "1", "--no-report",
            "--output-dir", str(work / "file-out")]  # fmt: skip
    for number, (name, text) in enumerate(_trace_documents()):
        path = folder / f"trace{number}.jsonl"
        path.write_text(text)
        yield f"--request-trace {name}", ["sweep", *rate, "--request-trace", str(path)]
    for number, (name, text) in enumerate(_interval_documents()):
        path = folder / f"intervals{number}.txt"
        path.write_text(text, errors="surrogateescape")
        yield f"--request-intervals {name}", ["sweep", *rate, "--request-rate", "10", "--request-intervals", str(path)]


def _corrupt(document: dict, how: str) -> object:
    levels = document.get("levels", [])
    if how == "histograms":
        for level in levels:
            for window in level.get("windows", []):
                window["latency_histogram"] = "not base64 at all %%%"
    elif how == "levels a string":
        document["levels"] = "x"
    elif how == "level without windows":
        for level in levels:
            level.pop("windows", None)
    elif how == "rows of numbers":
        for level in levels:
            level["row"] = 7
    elif how == "no settings":
        document.pop("settings", None)
    elif how == "future schema":
        document["schema_version"] = 99
    elif how == "a list":
        return [document]
    elif how == "windows wrong types":
        for level in levels:
            level["windows"] = [{"index": "a", "completed": None, "errors": 5}]
    return document


def results_cases(work: Path) -> Iterator[tuple[str, list[str]]]:
    """report, diff and gate on results.json files broken in several ways (the CSV left intact)."""
    source = work / "run"
    for how in ("histograms", "levels a string", "level without windows", "rows of numbers", "no settings",
                "future schema", "a list", "windows wrong types", "truncated"):  # fmt: skip
        target = work / f"broken-{how.replace(' ', '-')}"
        shutil.copytree(source, target)
        text = (source / "results.json").read_text()
        broken = text[: len(text) // 2] if how == "truncated" else json.dumps(_corrupt(json.loads(text), how))
        (target / "results.json").write_text(broken)
        yield f"report on {how}", ["report", str(target)]
        yield f"diff on {how}", ["diff", str(source), str(target), "--output-dir", str(work / "diff-out")]
        yield f"gate on {how}", ["gate", str(target), "-t", "p99<1s", "--baseline", str(source)]


def run_case(argv: list[str]) -> tuple[int, str]:
    from perfprobe.cli import run

    captured = io.StringIO()
    with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = run(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # noqa: BLE001 (anything escaping run() is a finding)
            code = -1
            captured.write(f"escaped run(): {type(exc).__name__}: {exc}\n")
    return code, captured.getvalue()


def main() -> int:
    work, live_url, seed, dead_url = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    sample = None if "--all" in sys.argv else 3
    rng = random.Random(seed)
    cases = [
        *option_cases(work, dead_url, rng, sample),
        *config_cases(work, dead_url, rng, sample),
        *file_cases(work, live_url),
        *results_cases(work),
    ]
    for name, argv in cases:
        code, stderr = run_case(argv)
        print(json.dumps({"case": name, "argv": argv, "code": code, "stderr": stderr}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
