"""Several models in one run: ``-m A -m B@c=8 -m C@data=c.json``.

Each model named after the first is loaded alongside it in the same windows. A model follows
the sweep's levels unless it names a fixed level of its own (``c=N`` in a concurrency sweep,
``rate=R`` in a request-rate sweep), so "does A slow down when B is busy?" is one run: sweep A
while B is held at a fixed load. ``data=FILE`` gives a model its own input data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from perfprobe.errors import UsageError

_KEYS = {"c": "concurrency", "concurrency": "concurrency", "rate": "rate", "data": "data"}
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class ModelPart:
    """One model of a run: its name, a fixed level of its own (None: the sweep's), its own data."""

    name: str
    level: float | None = None
    input_data: str | None = None

    def level_at(self, sweep_level: float) -> float:
        """The load this model gets while the sweep is at ``sweep_level``."""
        return self.level if self.level is not None else sweep_level

    def recorded(self) -> dict[str, object]:
        return {"name": self.name, "level": self.level, "input_data": self.input_data}


def model_names(given: str | Sequence[str] | None) -> list[str]:
    """The ``-m`` values as a list (the library also takes one name or a list)."""
    if given is None:
        return []
    return [given] if isinstance(given, str) else [str(name) for name in given]


def parse_parts(given: Sequence[str], load_kind: str) -> list[ModelPart]:
    """``NAME[@KEY=VALUE,...]`` each; a level's key must match the sweep's kind of load."""
    parts = [_parse_one(text, load_kind) for text in given]
    names = [part.name for part in parts]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"-m {repeated[0]}: named twice (each model once; give it one level)")
    return parts


def _parse_one(text: str, load_kind: str) -> ModelPart:
    name, _, settings = text.strip().partition("@")
    if not _NAME.match(name):
        raise UsageError(f"-m {text!r}: expected NAME or NAME@c=N / NAME@rate=R / NAME@data=FILE")
    level: float | None = None
    data: str | None = None
    for item in filter(None, (piece.strip() for piece in settings.split(","))):
        key, sep, value = item.partition("=")
        meaning = _KEYS.get(key.strip().lower())
        if not sep or meaning is None or not value.strip():
            raise UsageError(f"-m {text!r}: {item!r} is not c=N, rate=R or data=FILE")
        if meaning == "data":
            data = value.strip()
            continue
        if meaning != load_kind:
            asked = "a concurrency" if meaning == "concurrency" else "a request rate"
            raise UsageError(f"-m {text!r}: {asked} for one model needs a sweep of that kind")
        level = _positive(text, value, integer=meaning == "concurrency")
    return ModelPart(name, level, data)


def _positive(text: str, value: str, integer: bool) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if number <= 0 or (integer and not number.is_integer()):
        kind = "a whole number" if integer else "a number"
        raise UsageError(f"-m {text!r}: the level must be {kind} above 0")
    return number
