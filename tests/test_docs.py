"""The docs a maintainer reads: the command reference is current, every option explains itself and its default,
and every path the docs name exists."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from perfprobe.cli import build_parser
from perfprobe.commands import reference

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# a path as the docs write one: in backticks, under one of the project's top-level folders
NAMED_PATH = re.compile(r"`((?:perfprobe|docs|tests|benchmarks|configs|protos|reports)/[\w./-]*\w)`")


def test_the_command_reference_is_current() -> None:
    # in a fresh interpreter: a protocol a test registered (the fake toy) is no part of the shipped reference
    fresh = subprocess.run(
        [sys.executable, "-m", "perfprobe.commands.reference"], capture_output=True, text=True, check=True, timeout=60
    )
    assert (ROOT / "docs" / "cli.md").read_text() == fresh.stdout, "docs/cli.md is stale: run `make docs`"
    assert fresh.stdout.count("## perfprobe ") == len(reference._subcommands(build_parser()))


def _options() -> list[tuple[str, argparse.Action]]:
    found = []
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [
                    (name, a) for a in sub._actions if a.option_strings and not isinstance(a, argparse._HelpAction)
                ]
    return found


def _no_default(value: object) -> bool:
    return value is None or value is False or value in ([], "", argparse.SUPPRESS)


def test_every_option_has_help_that_gives_its_default() -> None:
    silent, no_default = [], []
    for command, action in _options():
        flag = f"{command} {action.option_strings[-1]}"
        if not (action.help or "").strip():
            silent.append(flag)
        elif not _no_default(action.default) and "default" not in action.help:
            no_default.append(f"{flag} (default {action.default!r})")
    assert not silent, f"options without help: {silent}"
    assert not no_default, f"options whose help hides their default: {no_default}"


def test_every_path_the_docs_name_exists() -> None:
    missing = []
    for doc in DOCS:
        for path in NAMED_PATH.findall(doc.read_text()):
            if "<" in path or "*" in path:
                continue
            if not (ROOT / path).exists():
                missing.append(f"{doc.relative_to(ROOT)}: {path}")
    assert not missing, "\n".join(missing)


def test_the_sample_sweep_config_is_a_valid_plan() -> None:
    from perfprobe.commands.config_file import apply_config
    from perfprobe.runs.options import SweepOptions
    from perfprobe.runs.plan import plan

    argv = ["sweep", "--config", str(ROOT / "configs" / "nightly.yaml")]
    parser = build_parser()
    planned = plan(SweepOptions.from_namespace(apply_config(parser, parser.parse_args(argv), argv)))
    assert (planned.model, planned.protocol, planned.levels) == ("resnet50", "grpc", [1, 2, 4, 8, 16, 32])
