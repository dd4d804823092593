"""Lay out perfprobe's built-in models as a Triton model repository for one server run."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

BUILTIN_MODELS: tuple[str, ...] = ("simple", "identity", "resnet50", "llm_standin")


def builtin_source(name: str) -> Path:
    """The packaged folder of a built-in model."""
    return Path(str(resources.files("perfprobe.server").joinpath("models", name)))


def materialize_builtin(target: Path, names: Sequence[str], seed: int = 0) -> Path:
    """Copy the named built-in models into ``target``; add resnet50's ONNX file and labels."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name not in BUILTIN_MODELS:
            raise ValueError(f"unknown built-in model {name!r}; known: {', '.join(BUILTIN_MODELS)}")
        destination = target / name
        shutil.copytree(builtin_source(name), destination, ignore=shutil.ignore_patterns("__pycache__"))
        if name == "resnet50":
            _add_resnet_files(destination, seed)
    return target


def _add_resnet_files(model_dir: Path, seed: int) -> None:
    from perfprobe.server import resnet
    from perfprobe.server.distribution import cache_dir

    onnx_file = resnet.ensure_model_file(cache_dir() / "models", seed=seed)
    (model_dir / "1" / "model.onnx").symlink_to(onnx_file)
    (model_dir / "labels.txt").write_text("\n".join(resnet.labels()) + "\n")
