"""``--config FILE``: a YAML file whose keys are a command's long options; flags on the line win."""

from __future__ import annotations

import argparse
from pathlib import Path

from perfprobe.errors import UsageError


def apply_config(top: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None) -> argparse.Namespace:
    """Re-parse with a YAML file's values as defaults, so flags given on the line still win."""
    if not getattr(args, "config", None):
        return args
    parser = args.subparser
    import yaml

    try:
        loaded = yaml.safe_load(Path(args.config).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read config {args.config}: {exc}") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"config {args.config} must be a mapping of option names to values")
    known = {action.dest: action for action in parser._actions}
    defaults = {}
    for key, value in loaded.items():
        dest = str(key).replace("-", "_")
        if dest not in known or dest in ("config", "help"):
            raise UsageError(f"config {args.config}: unknown option {key!r}")
        repeatable = isinstance(known[dest], argparse._AppendAction)  # -m A -m B: a YAML list, or one value
        defaults[dest] = [value] if repeatable and not isinstance(value, list) else value
    parser.set_defaults(**defaults)
    return top.parse_args(argv)
