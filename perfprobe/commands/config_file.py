"""``--config FILE``: a YAML file whose keys are a command's long options; flags on the line win."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from perfprobe.errors import UsageError

# options whose YAML value may be a mapping: their parsers take one (``parse_headers``, ``parse_request_parameters``)
MAPPINGS = frozenset({"header", "request_parameter"})
# an option given as JSON text on the command line, which YAML writes as a mapping
MAPPINGS_AS_JSON = frozenset({"cluster_runtime_env"})


def _config_value(config: str, key: object, action: argparse.Action, value: Any) -> Any:
    """A YAML value as the option would take it on the command line (its type and choices checked)."""
    flag = action.option_strings[-1] if action.option_strings else str(key)
    if isinstance(value, dict) and action.dest in MAPPINGS:
        return value
    if isinstance(value, dict) and action.dest in MAPPINGS_AS_JSON:
        value = json.dumps(value)
    if action.nargs == 0:  # a switch: true or false
        if not isinstance(value, bool):
            raise UsageError(f"config {config}: {key} ({flag}) must be true or false, not {value!r}")
        return value
    if value is None or isinstance(value, (bool, list, dict)):
        raise UsageError(f"config {config}: {key} ({flag}) needs one value, not {value!r}")
    text = value if isinstance(value, str) else repr(value)
    try:
        converted = action.type(text) if callable(action.type) else text
    except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
        raise UsageError(f"config {config}: {key} ({flag}): {value!r} is not valid ({exc})") from None
    if action.choices is not None and converted not in action.choices:
        allowed = ", ".join(map(str, action.choices))
        raise UsageError(f"config {config}: {key} ({flag}) must be one of {allowed}, not {value!r}")
    return converted


def apply_config(top: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None) -> argparse.Namespace:
    """Re-parse with a YAML file's values as defaults, so flags given on the line still win."""
    if not getattr(args, "config", None):
        return args
    parser = args.subparser
    import yaml

    try:
        loaded = yaml.safe_load(Path(args.config).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"cannot read config {args.config}: {reason}{where}") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"config {args.config} must be a mapping of option names to values")
    known = {action.dest: action for action in parser._actions}
    defaults = {}
    for key, value in loaded.items():
        dest = str(key).replace("-", "_")
        if dest not in known or dest in ("config", "help"):
            raise UsageError(f"config {args.config}: unknown option {key!r}")
        action = known[dest]
        repeatable = isinstance(action, argparse._AppendAction)  # -m A -m B: a YAML list, or one value
        if repeatable:
            values = value if isinstance(value, list) else [value]
            defaults[dest] = [_config_value(args.config, key, action, item) for item in values]
        else:
            defaults[dest] = _config_value(args.config, key, action, value)
    parser.set_defaults(**defaults)
    return top.parse_args(argv)
