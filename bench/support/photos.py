"""Photo-like test images for the benchmarks (generated, so nothing is downloaded or copied).

Real photos compress worse than flat colour: these are smooth colour fields
with texture and noise, which JPEG and PNG treat much like a photograph.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-car-truck"


def photo_like(width: int, height: int, seed: int = 0, noise: float = 12.0) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 64), max(2, width // 64), 3), dtype=np.uint8)
    base = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    array = np.asarray(base, dtype=np.int16)
    grain = rng.normal(0, noise, (height, width, 1)).astype(np.int16)
    return Image.fromarray(np.clip(array + grain, 0, 255).astype(np.uint8))


def encoded(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def jpeg_from_cifar(width: int = 640, height: int = 480, index: int = 0) -> bytes:
    """A real CIFAR car photo upscaled to `width`x`height` JPEG, or a generated one without the data."""
    files = sorted((CIFAR_DIR / "valid" / "car").glob("*.png"))
    if files:
        image = Image.open(files[index % len(files)]).convert("RGB")
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    else:
        image = photo_like(width, height, seed=index)
    return encoded(image, "JPEG", quality=90)
