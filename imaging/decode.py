"""The one image preprocessing function shared by training and serving.

`load_image(source, size)` turns encoded image bytes (or a file path) into a
`uint8` RGB array of shape `(size, size, 3)`: recognise the format from the
bytes, refuse decompression bombs before decoding, decode (first frame of an
animation), apply the EXIF orientation, convert any mode to RGB, resize with
one fixed filter. Training caches features of exactly what this returns and
the service feeds exactly what this returns to the SavedModel, so the two can
never disagree about what a picture looks like.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Formats we accept, by what Pillow recognises from the bytes (never the file name).
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP", "TIFF"})
SUPPORTED_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# One filter for every resize. BILINEAR in Pillow is area-aware when shrinking
# (its support grows with the scale), and `reducing_gap` lets Pillow shrink by
# whole factors first, which is much faster and visually equivalent.
RESAMPLE = Image.Resampling.BILINEAR
REDUCING_GAP = 3.0
DEFAULT_MAX_PIXELS = 40_000_000
# Bump when anything in load_image changes its pixels (filter, colour conversion, orientation):
# cached training features are keyed by it, so features of old decodes are never reused.
DECODE_VERSION = 1
# A truncated file is an error, never a silently grey-padded picture.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageError(ValueError):
    """Base class: the input could not be turned into a picture."""


class NotAnImageError(ImageError):
    """The bytes are not in any supported image format (HTTP 415)."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than allowed (HTTP 413)."""


class CorruptImageError(ImageError):
    """The bytes look like an image but do not decode (HTTP 422)."""


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit and float greyscale: scale the real range to 0..255 instead of clipping.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.round().astype(np.uint8), "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _read(source: bytes | str | Path) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    return Path(source).read_bytes()


def load_image(
    source: bytes | str | Path, size: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode, orient, convert and resize one image to a `(size, size, 3)` uint8 array.

    Raises NotAnImageError, ImageTooLargeError or CorruptImageError (all
    ImageError, a ValueError) with a message a person can act on.
    """
    data = _read(source)
    if not data:
        raise NotAnImageError("the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow warns at max_pixels/2 and raises at 2x its own limit; we apply ours.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise NotAnImageError(
            "the data is not a supported image (JPEG, PNG, BMP, GIF, WebP or TIFF)"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"the image has too many pixels (limit {max_pixels})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(f"the image header cannot be read: {exc}") from exc
    with img:
        if img.format not in SUPPORTED_FORMATS:
            raise NotAnImageError(
                f"{img.format} images are not supported; send JPEG, PNG, BMP, GIF, WebP or TIFF"
            )
        width, height = img.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
            )
        if width < 1 or height < 1:
            raise CorruptImageError(f"the image has no pixels ({width}x{height})")
        try:
            # JPEG only: decode at the smallest 1/2, 1/4 or 1/8 scale still >= size.
            # A 12-megapixel photo then costs a fraction of a full decode.
            img.draft("RGB", (size, size))
            img.seek(0)  # first frame of an animated GIF/WebP/TIFF
            oriented = ImageOps.exif_transpose(img)
            rgb = _to_rgb(oriented)
            resized = rgb.resize((size, size), RESAMPLE, reducing_gap=REDUCING_GAP)
            array = np.asarray(resized, dtype=np.uint8)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise CorruptImageError(f"the image is truncated or corrupt: {exc}") from exc
    return array.reshape(size, size, 3)


def is_image_file(path: Path) -> bool:
    """Whether a file name looks like an image we read (for walking data folders)."""
    return path.is_file() and path.suffix.lower() in SUPPORTED_SUFFIXES
