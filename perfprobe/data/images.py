"""Images to model input tensors: the resize, scaling and layout an image classifier expects."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perfprobe.client.model import TensorSpec
from perfprobe.errors import UsageError

SCALINGS = ("NONE", "INCEPTION", "VGG")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
VGG_MEAN_RGB = np.array([123.0, 117.0, 104.0], dtype=np.float32)


def image_layout(spec: TensorSpec) -> tuple[str, int, int, int]:
    """(format, channels, height, width) of an image input, from its dims and declared format."""
    if len(spec.shape) != 3:
        raise UsageError(f"input {spec.name} has dims {list(spec.shape)}; an image input needs 3 (CHW or HWC)")
    layout = spec.format.removeprefix("FORMAT_")
    if layout not in ("NCHW", "NHWC"):
        layout = "NCHW" if spec.shape[0] in (1, 3) else "NHWC"
    if layout == "NCHW":
        channels, height, width = spec.shape
    else:
        height, width, channels = spec.shape
    if channels not in (1, 3) or height <= 0 or width <= 0:
        raise UsageError(f"input {spec.name} dims {list(spec.shape)} are not a fixed-size 1- or 3-channel image")
    return layout, channels, height, width


def list_images(path: str | Path) -> list[Path]:
    """One image file, or the image files of a folder in name order."""
    target = Path(path)
    if target.is_dir():
        found = sorted(p for p in target.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise UsageError(f"{target} holds no image files")
        return found
    if not target.exists():
        raise UsageError(f"no such image or folder: {target}")
    return [target]


def preprocess(path: Path, spec: TensorSpec, scaling: str = "NONE") -> np.ndarray:
    """Load, resize and scale one image into the input's layout (float32, no batch dim)."""
    from PIL import Image, UnidentifiedImageError

    if scaling not in SCALINGS:
        raise UsageError(f"unknown scaling {scaling!r}; expected one of {', '.join(SCALINGS)}")
    layout, channels, height, width = image_layout(spec)
    try:
        with Image.open(path) as image:
            image = image.convert("RGB" if channels == 3 else "L").resize((width, height), Image.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32)
    except (UnidentifiedImageError, OSError) as exc:
        raise UsageError(f"cannot read image {path}: {exc}") from None
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    if scaling == "INCEPTION":
        pixels = pixels / 127.5 - 1.0
    elif scaling == "VGG" and channels == 3:
        pixels = pixels - VGG_MEAN_RGB
    if layout == "NCHW":
        pixels = np.transpose(pixels, (2, 0, 1))
    return np.ascontiguousarray(pixels)


def parse_classification(entry: bytes | str) -> tuple[float, int, str]:
    """Split a classification-extension string ``score:index[:label]``."""
    text = entry.decode("utf-8") if isinstance(entry, bytes) else entry
    parts = text.split(":", 2)
    return float(parts[0]), int(parts[1]), parts[2] if len(parts) > 2 else ""
