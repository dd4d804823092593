"""docs/cli.md, written from the parsers and the figure table themselves, so the reference cannot drift.

``python -m perfprobe.commands.reference > docs/cli.md`` (``make docs``); a test fails when the
committed file differs from what this writes.
"""

from __future__ import annotations

import argparse
import sys

HEADER = """# perfprobe command reference

Generated from the option declarations (`perfprobe/runs/options.py`, the commands' parsers) and the figure
table (`perfprobe/report/figures.py`) by `make docs`; do not edit by hand. Every option's default is
in its description. Exit codes are in the README.
"""


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").replace("%%", "%").split())


def _spelling(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    takes = action.nargs != 0
    value = ""
    if takes:
        if action.choices is not None:
            value = " {" + ",".join(map(str, action.choices)) + "}"
        else:
            value = f" {action.metavar or action.dest.upper()}"
    return ", ".join(f"`{flag}{value}`" for flag in action.option_strings)


def command_section(name: str, parser: argparse.ArgumentParser) -> list[str]:
    lines = [f"## perfprobe {name}", ""]
    if parser.description:
        lines += [_cell(parser.description), ""]
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if not isinstance(a, argparse._HelpAction)]
        if not actions:
            continue
        title = group.title if group.title not in ("options", "optional arguments") else "options"
        lines += [f"### {title}", "", "| option | meaning |", "| --- | --- |"]
        lines += [f"| {_spelling(action)} | {_cell(action.help or '')} |" for action in actions]
        lines.append("")
    return lines


def figures_section() -> list[str]:
    from perfprobe.report.figures import FIGURES

    lines = [
        "## Figures: results.csv's columns",
        "",
        "After the load level (`Concurrency` or `Request Rate`), in this order; perf_analyzer's `-f` columns first."
        " An empty cell is a figure the level does not have. `gate` and `diff` know a figure by its gate name "
        "(`docs/measurement.md` says how each is measured).",
        "",
        "| column | unit | gate name | lower is better |",
        "| --- | --- | --- | --- |",
    ]
    for figure in FIGURES:
        better = "" if not figure.gate else ("no" if figure.higher_is_better else "yes")
        lines.append(f"| {figure.column} | {figure.unit or '—'} | {figure.gate or '—'} | {better or '—'} |")
    return [*lines, ""]


def render() -> str:
    from perfprobe.cli import build_parser

    parser = build_parser()
    lines = [HEADER]
    for name, sub in _subcommands(parser).items():
        lines += command_section(name, sub)
    lines += figures_section()
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
