"""Mutation fuzzing of `imaging.load_image`: seed images, byte-level mutations, the property.

Shared by the bounded test (tests/imaging/test_decode_fuzz.py, hypothesis draws the
mutations) and the long run (scripts/fuzz_decoder.py, a seeded random.Random draws
them). A mutation is `(kind, position, value)`, three integers, so both drivers
describe inputs the same way and a failure found by either replays in the other.

The property: for any bytes, `load_image` returns a `(size, size, 3)` uint8 array or
raises `ImageError`; nothing else escapes, and small inputs never exhaust memory.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from bench.support.bad_inputs import animated, gradient, mode_image, pillow, tiff_strips
from bench.support.decode_bombs import repeat_last_scan, set_webp_canvas
from imaging import ImageError, load_image

# Values that break parsers: zero, one, sign and width boundaries, 16- and 32-bit maxima.
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
KINDS = (
    "flip_bit",
    "set_byte",
    "set_u16_le",
    "set_u16_be",
    "set_u32_le",
    "set_u32_be",
    "insert_bytes",
    "delete_bytes",
    "duplicate_block",
    "truncate",
    "set_small",
    "tiff_retype",
    "tiff_revalue",
    "png_fix_crcs",
    "jpeg_repeat_scan",
    "set_canvas",
)
Mutation = tuple[int, int, int]  # (kind index, position, value)
FUZZ_SIZE = 16
# Far below the service default (40 MP): a mutated header may legally declare up to this
# many pixels and make Pillow allocate them, so it bounds the memory and time per input.
FUZZ_MAX_PIXELS = 1_000_000


def seed_images() -> dict[str, bytes]:
    """Small valid images of every supported format, in the modes each format carries."""
    small = gradient(24, 18)
    return {
        "jpeg": pillow(small, "JPEG", quality=80),
        "jpeg_progressive_exif": pillow(
            small, "JPEG", progressive=True, exif=_exif_orientation(6), quality=80
        ),
        "jpeg_cmyk": pillow(small.convert("CMYK"), "JPEG"),
        "mpo": animated("MPO"),
        "png_rgb": pillow(small, "PNG"),
        "png_rgba": pillow(small.convert("RGBA"), "PNG"),
        "png_palette_trns": pillow(small.convert("P"), "PNG", transparency=0),
        "png_16bit": pillow(mode_image("I;16"), "PNG"),
        "png_1bit": pillow(small.convert("1"), "PNG"),
        "apng": animated("PNG"),
        "bmp_rgb": pillow(small, "BMP"),
        "bmp_palette": pillow(small.convert("P"), "BMP"),
        "gif": pillow(small.convert("P"), "GIF"),
        "gif_animated": animated("GIF"),
        "webp_lossy": pillow(small, "WEBP", quality=60),
        "webp_lossless_alpha": pillow(small.convert("RGBA"), "WEBP", lossless=True),
        "webp_animated": animated("WEBP"),
        "tiff_rgb": pillow(small, "TIFF"),
        "tiff_deflate": pillow(small, "TIFF", compression="tiff_adobe_deflate"),
        "tiff_packbits_cmyk": pillow(small.convert("CMYK"), "TIFF", compression="packbits"),
        "tiff_float": pillow(mode_image("F"), "TIFF"),
        "tiff_multipage": animated("TIFF"),
        "tiff_strips": tiff_strips((4, 122)),  # the file with a well-typed offset
    }


def _exif_orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


def mutate(data: bytes, mutations: Sequence[Mutation]) -> bytes:
    """Apply each (kind, position, value) in turn; positions wrap around the current length."""
    out = bytearray(data)
    for kind_index, position, value in mutations:
        kind = KINDS[kind_index % len(KINDS)]
        if not out:
            out = bytearray(b"\0")
        at = position % len(out)
        interesting = INTERESTING[value % len(INTERESTING)]
        if kind == "flip_bit":
            out[at] ^= 1 << (value % 8)
        elif kind == "set_byte":
            out[at] = interesting & 0xFF if value % 2 else value & 0xFF
        elif kind.startswith("set_u"):
            width = 2 if "16" in kind else 4
            order = "<" if kind.endswith("le") else ">"
            number = interesting & (0xFFFF if width == 2 else 0xFFFFFFFF)
            packed = struct.pack(order + ("H" if width == 2 else "I"), number)
            out[at : at + width] = packed[: max(0, len(out) - at)]
        elif kind == "insert_bytes":
            out[at:at] = bytes([value & 0xFF]) * (1 + (value >> 8) % 64)
        elif kind == "delete_bytes":
            del out[at : at + 1 + value % 64]
        elif kind == "duplicate_block":
            block = out[at : at + 1 + value % 256]
            out[at:at] = block
        elif kind == "truncate":
            del out[at:]
        elif kind == "set_small":  # enum-like fields: types, counts, modes, compressions
            out[at] = value % 16
        elif kind == "jpeg_repeat_scan":  # the many-scan progressive JPEG (a no-op elsewhere)
            out = bytearray(repeat_last_scan(bytes(out), 1 + value % 200))
        elif kind == "set_canvas":  # a canvas far larger than the frames on it
            out = bytearray(_set_canvas(bytes(out), 1 + value % 16384, 1 + (value >> 14) % 16384))
        elif kind.startswith("tiff_"):
            _mutate_tiff_entry(out, position, value, retype=kind == "tiff_retype")
        else:  # png_fix_crcs: let mutated chunk contents past the CRC check to the decoder
            _fix_png_crcs(out)
    return bytes(out)


def _set_canvas(data: bytes, width: int, height: int) -> bytes:
    """The canvas size of an extended WebP or a GIF's logical screen; else unchanged."""
    if data[:4] == b"RIFF":
        return set_webp_canvas(data, width, height)
    if data[:3] == b"GIF" and len(data) >= 10:
        return data[:6] + struct.pack("<HH", width & 0xFFFF, height & 0xFFFF) + data[10:]
    return data


def _mutate_tiff_entry(out: bytearray, position: int, value: int, retype: bool) -> None:
    """Give one IFD entry of a TIFF another type (0-13: the issue's FLOAT StripOffsets is 11)
    or another value; a no-op for anything that is not a classic TIFF."""
    order = {b"II": "<", b"MM": ">"}.get(bytes(out[:2]))
    if order is None or len(out) < 8:
        return
    ifd = struct.unpack(order + "I", out[4:8])[0]
    if ifd + 2 > len(out):
        return
    count = struct.unpack(order + "H", out[ifd : ifd + 2])[0]
    entry = ifd + 2 + 12 * (position % max(count, 1))
    if entry + 12 > len(out):
        return
    if retype:
        out[entry + 2 : entry + 4] = struct.pack(order + "H", value % 14)
    else:
        number = INTERESTING[value % len(INTERESTING)] if value % 2 else value >> 16
        out[entry + 8 : entry + 12] = struct.pack(order + "I", number & 0xFFFFFFFF)


def _fix_png_crcs(out: bytearray) -> None:
    at = 8
    while at + 12 <= len(out):
        length = struct.unpack(">I", out[at : at + 4])[0]
        end = at + 8 + length
        if end + 4 > len(out):
            return
        out[end : end + 4] = struct.pack(">I", zlib.crc32(out[at + 4 : end]))
        at = end + 4


def check_decode(data: bytes) -> str:
    """Decode once and enforce the property; returns the outcome's name for statistics.

    Raises AssertionError for a wrong result, and lets any exception that is not an
    ImageError escape (the caller reports it as a failure).
    """
    try:
        array = load_image(data, FUZZ_SIZE, max_pixels=FUZZ_MAX_PIXELS)
    except ImageError as exc:
        return type(exc).__name__
    except MemoryError as exc:  # inputs here are a few KB and at most FUZZ_MAX_PIXELS
        raise AssertionError(f"MemoryError on a {len(data)}-byte input") from exc
    assert isinstance(array, np.ndarray), type(array)
    assert array.shape == (FUZZ_SIZE, FUZZ_SIZE, 3) and array.dtype == np.uint8
    return "decoded"


def describe(seed: str, mutations: Sequence[Mutation]) -> str:
    """A line that replays a failing input: the seed's name and the mutation list."""
    return f"seed={seed!r} mutations={list(mutations)!r}"


def replay(seed: str, mutations: Sequence[Mutation]) -> bytes:
    return mutate(seed_images()[seed], mutations)


def _selfcheck() -> None:  # pragma: no cover - a quick look from the command line
    for name, data in seed_images().items():
        print(f"{name:24} {len(data):6d} B  {check_decode(data)}")
        with Image.open(io.BytesIO(data)) as img:
            assert img.format is not None


if __name__ == "__main__":
    _selfcheck()
