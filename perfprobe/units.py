"""Byte sizes as people write them (``64KiB``, ``4MiB``) and as reports print them."""

from __future__ import annotations

import math

from perfprobe.errors import UsageError

_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


MAX_TENSOR_BYTES = 1 << 30  # one tensor of a compare; more does not fit shared memory or a request sensibly


def parse_size(text: str) -> int:
    """``64KiB``, ``4MiB``, ``1000`` (bytes) -> bytes."""
    value = text.strip().lower()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if value.endswith(unit):
            number = value[: -len(unit)]
            break
    else:
        number, unit = value, "b"
    try:
        size = int(float(number) * _UNITS[unit])
    except (ValueError, OverflowError):
        raise UsageError(f"--sizes: {text!r} is not a size like 64KiB or 4MiB") from None
    if not 0 < size <= MAX_TENSOR_BYTES:
        raise UsageError(f"--sizes: {text!r} must be from 1 byte to 1 GiB")
    return size


def human(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def parse_fraction(text: str) -> float:
    """``5%`` or ``0.05`` -> 0.05: limits and shifts written as a percentage or a fraction (ValueError else)."""
    value = text.strip()
    return float(value[:-1]) / 100.0 if value.endswith("%") else float(value)


_TIME_UNITS = {"us": 1.0, "µs": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def parse_duration_us(text: str) -> float:
    """``5ms``, ``250us``, ``1.5s`` -> microseconds; a bare number is milliseconds.

    ValueError (with what was expected) when the text is not a duration.
    """
    value = text.strip().lower()
    for unit in sorted(_TIME_UNITS, key=len, reverse=True):
        if value.endswith(unit):
            number, factor = value[: -len(unit)], _TIME_UNITS[unit]
            break
    else:
        number, factor = value, _TIME_UNITS["ms"]
    try:
        result = float(number) * factor
    except ValueError:
        raise ValueError(f"{text!r} is not a duration like 5ms, 250us or 1.5s") from None
    if not math.isfinite(result):
        raise ValueError(f"{text!r}: a duration must be a finite number")
    if result < 0:
        raise ValueError(f"{text!r}: a duration cannot be negative")
    return result


def format_us(micros: float) -> str:
    """Microseconds as people read them: ``850 µs``, ``4.21 ms``, ``1.50 s``."""
    if micros >= 1_000_000:
        return f"{micros / 1_000_000:.2f} s"
    if micros >= 1000:
        return f"{micros / 1000:.2f} ms"
    return f"{micros:.0f} µs"
