"""A heatmap `[h, w]` in [0, 1] laid over its picture, as a small PNG (Pillow only)."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

# Large enough to see which part of a picture counted; a 96 px input is drawn at 2x.
MIN_SIDE = 192
OPACITY = 0.6  # of the heat colour where the heat is 1


def heat_colours(heat: np.ndarray) -> np.ndarray:
    """[h, w] in [0, 1] -> [h, w, 3] uint8: dark blue (cold) through red to yellow (hot)."""
    h = np.clip(heat, 0.0, 1.0)[..., None]
    red = np.clip(2.0 * h, 0, 1)
    green = np.clip(2.0 * h - 1.0, 0, 1)
    blue = np.clip(0.5 - h, 0, 1)
    return (np.concatenate([red, green, blue], axis=-1) * 255).astype(np.uint8)


def overlay_png(picture: np.ndarray, heat: np.ndarray) -> bytes:
    """PNG bytes of `picture` (uint8 [s, s, 3]) with `heat` upsampled and blended over it."""
    side = max(MIN_SIDE, picture.shape[0])
    size = (side, side * picture.shape[1] // picture.shape[0])
    base = np.asarray(Image.fromarray(picture).resize(size, Image.Resampling.BILINEAR), np.float32)
    smooth = Image.fromarray(np.asarray(heat, np.float32), mode="F").resize(
        size, Image.Resampling.BILINEAR
    )
    amount = np.clip(np.asarray(smooth), 0.0, 1.0)[..., None] * OPACITY
    colours = heat_colours(np.asarray(smooth)).astype(np.float32)
    blended = (base * (1.0 - amount) + colours * amount).round().astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(blended).save(out, format="PNG", optimize=False)
    return out.getvalue()


def overlay_png_b64(picture: np.ndarray, heat: np.ndarray) -> str:
    return base64.b64encode(overlay_png(picture, heat)).decode("ascii")
