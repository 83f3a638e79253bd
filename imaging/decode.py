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

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from imaging.decode_cost import check_decode_cost, declared_frames
from imaging.errors import (
    CorruptImageError,
    ImageError,
    ImageTooCostlyError,
    ImageTooLargeError,
    NotAnImageError,
)
from imaging.memory import release_free_memory

__all__ = [
    "CorruptImageError",
    "ImageError",
    "ImageTooCostlyError",
    "ImageTooLargeError",
    "NotAnImageError",
    "is_image_file",
    "load_image",
    "untrusted_decode",
]

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
DECODE_VERSION = 2  # 2: NaN/inf in float images no longer blacken the whole picture
# A truncated file is an error, never a silently grey-padded picture.
ImageFile.LOAD_TRUNCATED_IMAGES = False


# Pillow's own bomb check (DecompressionBombError at open) fires at twice its limit.
PILLOW_PIXEL_LIMIT = 2 * (Image.MAX_IMAGE_PIXELS or 0) or None
# After decoding this many pixels or more, freed memory goes back to the OS (see imaging.memory).
RELEASE_MEMORY_AFTER_PIXELS = 4_000_000
# High-precision greyscale is scaled to 8 bits in blocks of this many pixels (float64: 2 MB),
# so a 40-megapixel 16-bit image never needs a 320 MB float64 copy.
SCALE_BLOCK_PIXELS = 1 << 18
HIGH_PRECISION_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
WHITE = (255, 255, 255)


@contextlib.contextmanager
def untrusted_decode(data: bytes, max_pixels: int) -> Iterator[None]:
    """The one rule for what an exception while decoding untrusted bytes means.

    Pillow's decoders raise whatever a malformed file provokes: OSError, SyntaxError,
    ValueError, EOFError, but also TypeError (a TIFF StripOffsets tag typed FLOAT),
    struct.error, IndexError, ZeroDivisionError... None of those is our bug, and none
    may escape as a server error or crash a training job. So, inside this block:
    - our own ImageError passes unchanged (pixel limit 413, unsupported format 415, ...);
    - MemoryError passes unchanged: the process ran out of memory, which says nothing
      about the input (legal inputs are bounded by the pixel limit);
    - Pillow's decompression-bomb check is the pixel limit too: ImageTooLargeError (413);
    - bytes no decoder recognises are NotAnImageError (415), unless they start with the
      signature of a format we read: then they look like an image and are corrupt (422);
    - any other Exception is CorruptImageError (422).
    """
    try:
        yield
    except (ImageError, MemoryError):
        raise
    except Image.DecompressionBombError as exc:
        limit = min(max_pixels, PILLOW_PIXEL_LIMIT or max_pixels)
        raise ImageTooLargeError(f"the image has too many pixels (limit {limit})") from exc
    except UnidentifiedImageError as exc:
        if _has_supported_signature(data):
            raise CorruptImageError(
                "the image is corrupt: it starts like a supported image but its header "
                "cannot be read"
            ) from exc
        raise NotAnImageError(
            "the data is not a supported image (JPEG, PNG, BMP, GIF, WebP or TIFF)"
        ) from exc
    except Exception as exc:
        detail = str(exc) or type(exc).__name__
        raise CorruptImageError(f"the image is truncated or corrupt: {detail[:200]}") from exc


def _has_supported_signature(data: bytes) -> bool:
    """Whether the first bytes are accepted by the Pillow plugin of a format we read."""
    Image.init()
    head = data[:16]
    for fmt in SUPPORTED_FORMATS:
        accept = Image.OPEN.get(fmt, (None, None))[1]
        if accept is not None and accept(head):
            return True
    return False


def _grey_to_8bit(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greyscale -> 8-bit L, the real range scaled to 0..255.

    NaN and -inf become the darkest value, +inf the brightest; a flat image is black.
    """
    values = np.asarray(img)  # uint16 / int32 / float32, one copy of the pixels
    floating = np.issubdtype(values.dtype, np.floating)
    rows = max(1, SCALE_BLOCK_PIXELS // max(1, values.shape[1]))
    lo, hi = np.inf, -np.inf
    for start in range(0, values.shape[0], rows):
        block = values[start : start + rows]
        if floating:
            block = block[np.isfinite(block)]
        if block.size:
            lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    out = np.zeros(values.shape, np.uint8)
    if hi > lo:
        scale = 255.0 / (hi - lo)
        for start in range(0, values.shape[0], rows):
            block = values[start : start + rows].astype(np.float64)
            if floating:
                np.nan_to_num(block, copy=False, nan=lo, posinf=hi, neginf=lo)
            block -= lo  # in place: one block-sized temporary in all
            block *= scale
            out[start : start + rows] = np.rint(block, out=block)
    return Image.fromarray(out, "L")


def _on_white(img: Image.Image) -> Image.Image:
    """Composite an image with alpha on white (RGB, or L for LA); exact as alpha_composite."""
    if img.mode == "LA":
        grey, alpha = img.split()
        background = Image.new("L", img.size, 255)
        background.paste(grey, mask=alpha)
        return background
    rgba = img if img.mode == "RGBA" else img.convert("RGBA")
    background = Image.new("RGB", rgba.size, WHITE)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _rgb_resized(img: Image.Image, size: int) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB at (size, size); transparency is composited on white.

    Greyscale stays one channel until after the resize: converting grey to RGB copies it
    into three equal channels, which commutes exactly with the per-channel resize, so a
    40-megapixel 1-bit or 16-bit image never needs a 160 MB RGB copy.
    """
    if img.mode in HIGH_PRECISION_MODES:
        img = _grey_to_8bit(img)
    elif img.mode in ("1", "LA"):
        img = _on_white(img) if img.mode == "LA" else img.convert("L")
    elif img.mode == "RGB":
        pass
    elif img.has_transparency_data or img.mode in ("RGBA", "PA", "RGBa", "La"):
        img = _on_white(img)
    else:
        img = img.convert("RGB")  # P without transparency, CMYK, YCbCr, LAB, HSV
    resized = img.resize((size, size), RESAMPLE, reducing_gap=REDUCING_GAP)
    return resized if resized.mode == "RGB" else resized.convert("RGB")


def _read(source: bytes | str | Path) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    return Path(source).read_bytes()


def load_image(
    source: bytes | str | Path, size: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode, orient, convert and resize one image to a `(size, size, 3)` uint8 array.

    Raises NotAnImageError (415), ImageTooLargeError (413) or CorruptImageError (422),
    all ImageError (a ValueError), with a message a person can act on; no other
    exception escapes for any input bytes except MemoryError (see `untrusted_decode`).
    A path that cannot be read raises OSError.
    """
    data = _read(source)
    if not data:
        raise NotAnImageError("the image is empty (0 bytes)")
    decoded_pixels = 0
    try:
        with untrusted_decode(data, max_pixels):
            with warnings.catch_warnings():
                # Pillow warns at its own limit and raises at twice it; we apply ours.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
            with img:
                if img.format not in SUPPORTED_FORMATS:
                    raise NotAnImageError(
                        f"{img.format} images are not supported; "
                        "send JPEG, PNG, BMP, GIF, WebP or TIFF"
                    )
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageTooLargeError(
                        f"the image is {width}x{height} = {width * height} pixels; "
                        f"the limit is {max_pixels}"
                    )
                if width < 1 or height < 1:
                    raise CorruptImageError(
                        f"the image is corrupt: it has no pixels ({width}x{height})"
                    )
                # Scans, WebP working memory, frame count: all read from headers, so a
                # costly file is refused before its first pixel is decoded.
                check_decode_cost(data, img.format, width, height, declared_frames(img))
                # JPEG only: decode at the smallest 1/2, 1/4 or 1/8 scale still >= size.
                # A 12-megapixel photo then costs a fraction of a full decode.
                img.draft("RGB", (size, size))
                decoded_pixels = img.size[0] * img.size[1]
                img.seek(0)  # first frame of an animated GIF/WebP/PNG or multi-page TIFF
                # In place: a picture without an orientation tag is not copied.
                ImageOps.exif_transpose(img, in_place=True)
                array = np.asarray(_rgb_resized(img, size), dtype=np.uint8)
    finally:
        if decoded_pixels >= RELEASE_MEMORY_AFTER_PIXELS:
            release_free_memory()
    return array.reshape(size, size, 3)


def is_image_file(path: Path) -> bool:
    """Whether a file name looks like an image we read (for walking data folders)."""
    return path.is_file() and path.suffix.lower() in SUPPORTED_SUFFIXES
