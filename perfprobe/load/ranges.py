"""Load-level ranges: ``START:END[:STEP]``, or a doubling form ``START:END:x2``."""

from __future__ import annotations

import math

from perfprobe.errors import UsageError

MAX_LEVELS = 10_000  # a range that expands to more levels than this is a typo, not a sweep
MAX_LEVEL = {True: 100_000, False: 10_000_000.0}  # requests in flight; requests per second


def parse_range(text: str, option: str, *, integer: bool, minimum: float) -> list[float]:
    """Expand a range option into its levels, in load order; refused before expanding when it is too large."""
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or not all(p.strip() for p in parts):
        raise UsageError(f"{option} {text!r}: expected START, START:END or START:END:STEP (STEP may be xN)")
    number = int if integer else float
    try:
        start = number(parts[0])
        end = number(parts[1]) if len(parts) > 1 else start
    except ValueError:
        kind = "whole numbers" if integer else "numbers"
        raise UsageError(f"{option} {text!r}: START and END must be {kind}") from None
    if not (math.isfinite(start) and math.isfinite(end)):
        raise UsageError(f"{option} {text!r}: START and END must be finite numbers")
    if end > MAX_LEVEL[integer]:
        what = "requests in flight" if integer else "requests per second"
        raise UsageError(f"{option} {text!r}: at most {MAX_LEVEL[integer]:g} {what}")
    if start < minimum:
        raise UsageError(f"{option} {text!r}: start must be at least {minimum:g}")
    if end < start:
        raise UsageError(f"{option} {text!r}: end {end:g} is below start {start:g}")
    step_text = parts[2].strip() if len(parts) == 3 else "1"
    if step_text.lower().startswith("x"):
        try:
            factor = float(step_text[1:])
        except ValueError:
            raise UsageError(f"{option} {text!r}: a multiplying step looks like x2") from None
        if not factor > 1 or not math.isfinite(factor):
            raise UsageError(f"{option} {text!r}: a multiplying step must be a finite number above x1")
        levels, level = [], start
        while level <= end + 1e-9:
            levels.append(number(level) if integer else level)
            level = level * factor
            if integer:
                level = max(int(level), levels[-1] + 1)
        return levels
    try:
        step = number(step_text)
    except ValueError:
        raise UsageError(f"{option} {text!r}: STEP must be a number or xN") from None
    if not step > 0 or not math.isfinite(step):
        raise UsageError(f"{option} {text!r}: STEP must be a positive number")
    if (end - start) / step + 1 > MAX_LEVELS:
        raise UsageError(f"{option} {text!r}: more than {MAX_LEVELS} levels; take a larger STEP or xN")
    levels, index = [], 0
    while start + index * step <= end + 1e-9:
        levels.append(start + index * step)
        index += 1
    return levels
