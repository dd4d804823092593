"""``--cluster-runtime-env``: how perfprobe reaches Ray nodes it is not installed on."""

from __future__ import annotations

import json
from typing import Any

from perfprobe.errors import UsageError


def parse_runtime_env(text: str | None) -> dict[str, Any] | None:
    """``--cluster-runtime-env``: Ray's runtime_env as JSON (how perfprobe reaches nodes it is not installed on)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--cluster-runtime-env is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError('--cluster-runtime-env must be a JSON object, e.g. \'{"pip": ["perfprobe"]}\'')
    return value
