"""The bad-input corpus: every hostile or odd request body we know of, with its expected answer.

`cases()` builds each input in memory (deterministic, no files) as a `BadInput`:
its name, the body (encoded image bytes, or a JSON body), the declared content
type, the HTTP status docs/service.md's error list promises and a fragment of the
error message (None for inputs that must be answered 200). Image cases go to
every image route (multipart and raw `/predict`, `/decode_predictions`, TF
Serving `{"b64": ...}`); JSON cases name the JSON routes they apply to.

Statuses assume the test service's limits (`tests/service/conftest.make_settings`:
1,000,000 pixels and 200,000 bytes per request); every decompression bomb here
also exceeds the default 40,000,000-pixel limit, so `bench/bad_input_memory.py`
runs the same corpus against a service with default settings, plus
`legal_maximum_cases()`, the largest inputs those settings accept.

Run `python -m bench.support.bad_inputs` to list the corpus.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image

from bench.support.decode_bombs import gif_frame_bomb, jpeg_scan_bomb, webp_canvas_bomb
from imaging.decode_cost import DECODE_BYTES_PER_PIXEL, MAX_DECODE_BYTES, MAX_FRAMES

# Routes a case can go to (see tests/service/test_service_bad_inputs.py).
IMAGE_ROUTES = ("predict_multipart", "predict_raw", "decode_predictions", "tfserving_b64")
JSON_ROUTES = ("decode_predictions_json", "tfserving_json")
# The size of the models the corpus is made for (the service test fixtures: 32 px).
MODEL_SIZE = 32

# The 186-byte TIFF of the hardening issue (StripOffsets typed FLOAT), byte for byte.
ISSUE_TIFF_B64 = (
    "SUkqAAgAAAAJAAABBAABAAAACAAAAAEBBAABAAAACAAAAAIBAwABAAAACAAAAAMBAwABAAAAAQAAAAYBAwABAAAA"
    "AQAAABEBCwABAAAAAAD0QhUBAwABAAAAAQAAABYBBAABAAAACAAAABcBBAABAAAAQAAAAAAAAAAAAQIDBAUGBwgJ"
    "CgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/"
)

# Fragments of the messages the service gives (docs/service.md, Errors).
CORRUPT = "corrupt"  # 422: looks like an image, does not decode
NOT_IMAGE = "not a supported image"  # 415: not in any format we read
NOT_SUPPORTED = "images are not supported"  # 415: a format Pillow knows but we do not take
TOO_MANY_PIXELS = "pixels"  # 413: the pixel limit


@dataclass(frozen=True)
class BadInput:
    """One corpus entry; `status`/`fragment` are what every applicable route must answer."""

    name: str
    # Image bytes (kind "image"), or a JSON value or raw JSON bytes, or a function of
    # the model's class count giving one (scores must be as wide as the model's output).
    body: bytes | Any
    content_type: str
    status: int
    fragment: str | None  # in the error message; None when status is 200
    kind: Literal["image", "json"] = "image"
    routes: tuple[str, ...] = IMAGE_ROUTES
    # Routes whose answer differs on purpose: route -> (status, fragment).
    per_route: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    xfail: str | None = None  # why this case still fails here (fixed in another branch)

    def expected(self, route: str) -> tuple[int, str | None]:
        return self.per_route.get(route, (self.status, self.fragment))

    def payload(self, classes: int) -> bytes | Any:
        """The body to send to a model with `classes` outputs."""
        return self.body(classes) if callable(self.body) else self.body


# ---------------------------------------------------------------------------
# Small encoders (Pillow for valid files, hand-built bytes for malformed ones)


def pillow(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def gradient(width: int = 48, height: int = 40, mode: str = "RGB") -> Image.Image:
    """A deterministic picture with structure (so wrong orientation or channels would show)."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], -1)
    image = Image.fromarray(rgb.astype(np.uint8), "RGB")
    return image if mode == "RGB" else image.convert(mode)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_raw(
    width: int, height: int, depth: int = 8, colour: int = 0, idat: bytes | None = None
) -> bytes:
    """A PNG built by hand: IHDR with any size, then an IDAT (default: none) and IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
    if idat is not None:
        out += _png_chunk(b"IDAT", idat)
    return out + _png_chunk(b"IEND", b"")


def tiff_raw(entries: list[tuple[int, int, list[Any]]], pixels: bytes) -> bytes:
    """A little-endian one-IFD TIFF from (tag, type, values); values > 4 bytes go after the IFD.

    Types: 3 SHORT, 4 LONG, 5 RATIONAL (values are (num, den)), 10 SRATIONAL,
    11 FLOAT, 12 DOUBLE. Pixel data follows the out-of-line values.
    """
    formats = {3: "H", 4: "I", 8: "h", 9: "i", 11: "f", 12: "d"}
    ifd_end = 8 + 2 + 12 * len(entries) + 4
    placed, extra = [], b""
    for tag, kind, values in entries:
        if kind in (5, 10):
            pair = "<II" if kind == 5 else "<ii"
            payload = b"".join(struct.pack(pair, *v) for v in values)
        else:
            payload = struct.pack("<" + formats[kind] * len(values), *values)
        head = struct.pack("<HHI", tag, kind, len(values))
        if len(payload) <= 4:
            placed.append(head + payload.ljust(4, b"\0"))
        else:
            placed.append(head + struct.pack("<I", ifd_end + len(extra)))
            extra += payload
    ifd = struct.pack("<H", len(entries)) + b"".join(placed) + b"\0\0\0\0"
    return b"II*\0" + struct.pack("<I", 8) + ifd + extra + pixels


def tiff_strips(
    offsets: tuple[int, Any], counts: tuple[int, Any] = (4, 64), size: int = 8
) -> bytes:
    """An 8x8 8-bit greyscale TIFF whose StripOffsets (273) / StripByteCounts (279) tags
    have the given (type, value): the issue's family of malformed files.

    The offset value must point at the pixels: 122 when both tags fit in the IFD
    entry, 130 when one of them (a RATIONAL or DOUBLE) takes 8 bytes after it.
    """
    entries = [
        (256, 4, [size]),
        (257, 4, [size]),
        (258, 3, [8]),
        (259, 3, [1]),
        (262, 3, [1]),
        (273, offsets[0], [offsets[1]]),
        (277, 3, [1]),
        (278, 4, [size]),
        (279, counts[0], [counts[1]]),
    ]
    return tiff_raw(entries, bytes(range(size * size)))


def tiff_header(width: int, height: int, bits: int = 8) -> bytes:
    """An uncompressed greyscale TIFF declaring width x height with no pixel data at all."""
    entries = [
        (256, 4, [width]),
        (257, 4, [height]),
        (258, 3, [bits]),
        (259, 3, [1]),
        (262, 3, [1]),
        (273, 4, [122]),
        (277, 3, [1]),
        (278, 4, [height]),
        (279, 4, [width * height * bits // 8 & 0xFFFFFFFF]),
    ]
    return tiff_raw(entries, b"")


def gif_header(width: int, height: int, frame: tuple[int, int] | None = None) -> bytes:
    """GIF89a with a logical screen (and optionally one frame descriptor) and a few LZW bytes."""
    fw, fh = frame if frame is not None else (width, height)
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, fw, fh, 0)
    return screen + descriptor + b"\x02\x02\x44\x01\x00\x3b"


def bmp_header(width: int, height: int, bits: int = 24, compression: int = 0) -> bytes:
    """BITMAPINFOHEADER declaring width x height (negative height: top-down), no pixel data."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, compression, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def jpeg_sof(width: int, height: int) -> bytes:
    """A baseline JPEG's first markers declaring width x height, and no scan data."""
    sof = struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"


def webp_vp8l_header(width: int, height: int) -> bytes:
    """A lossless WebP (VP8L) whose header declares width x height (max 16384), no image data."""
    bits = (width - 1) | ((height - 1) << 14)
    payload = b"\x2f" + struct.pack("<I", bits) + b"\0" * 8
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def with_exif_orientation(orientation: Any, kind: int = 3, fmt: str = "JPEG") -> bytes:
    """A 48x40 picture whose EXIF Orientation (0x0112) is `orientation`, written as `kind`
    (3 SHORT as the standard says; 4 LONG, 2 ASCII, 5 RATIONAL are the odd ones)."""
    if kind == 3:
        image = gradient()
        exif = image.getexif()
        exif[0x0112] = orientation
        return pillow(image, fmt, exif=exif, quality=90)
    # Odd types: build the EXIF block by hand (big-endian TIFF header inside APP1).
    if kind == 2:
        value = str(orientation).encode()[:3].ljust(4, b"\0")
        count = min(len(str(orientation)) + 1, 4)
    elif kind == 5:
        value, count = b"\0\0\0\x1a", 1  # offset 26: just after the IFD
    else:
        value, count = struct.pack(">I", int(orientation)), 1
    ifd = struct.pack(">HHHI", 1, 0x0112, kind, count) + value + b"\0\0\0\0"
    tail = struct.pack(">II", int(orientation), 1) if kind == 5 else b""
    exif_bytes = b"Exif\0\0MM\0*" + struct.pack(">I", 8) + ifd + tail
    return pillow(gradient(), fmt, exif=exif_bytes, quality=90)


def animated(fmt: str, **params: Any) -> bytes:
    frames = [Image.new("RGB", (40, 30), c) for c in ((0, 200, 0), (200, 0, 0), (0, 0, 200))]
    return pillow(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50, **params)


def mode_image(mode: str) -> Image.Image:
    """A 48x40 image in `mode` with varied content (16-bit and float ranges included)."""
    if mode in ("I;16", "I;16B", "I"):
        ramp = (np.arange(48 * 40).reshape(40, 48) * 30).astype(
            np.uint16 if "16" in mode else np.int32
        )
        return Image.fromarray(ramp).convert(mode) if mode != "I" else Image.fromarray(ramp, "I")
    if mode == "F":
        return Image.fromarray(np.linspace(-1.5, 7.25, 48 * 40, dtype=np.float32).reshape(40, 48))
    return gradient().convert(mode)


def float_tiff(values: list[float]) -> bytes:
    """A mode F (32-bit float) TIFF of 48x40 filled by repeating `values` (NaN, inf allowed)."""
    array = np.resize(np.array(values, dtype=np.float32), (40, 48))
    return pillow(Image.fromarray(array, "F"), "TIFF")


def jpeg_ok(width: int = 48, height: int = 40, **params: Any) -> bytes:
    return pillow(gradient(width, height), "JPEG", quality=90, **params)


def png_ok(width: int = 48, height: int = 40) -> bytes:
    return pillow(gradient(width, height), "PNG")


def png_bomb(side: int) -> bytes:
    """A real deflate bomb: side x side greyscale zeros, about side^2 / 1000 bytes on disk."""
    return pillow(Image.new("L", (side, side)), "PNG", optimize=False, compress_level=9)


# ---------------------------------------------------------------------------
# The corpus


def _image_cases() -> list[BadInput]:
    png, jpeg = png_ok(), jpeg_ok()
    gif = pillow(gradient().convert("P"), "GIF")
    bmp = pillow(gradient(), "BMP")
    webp = pillow(gradient(), "WEBP", quality=80)
    tiff = pillow(gradient(), "TIFF")
    issue_tiff = base64.b64decode(ISSUE_TIFF_B64)

    def bad(name: str, body: bytes, ctype: str, status: int, fragment: str | None) -> BadInput:
        return BadInput(name, body, ctype, status, fragment)

    def ok(name: str, body: bytes, ctype: str = "application/octet-stream") -> BadInput:
        return BadInput(name, body, ctype, 200, None)

    cases = [
        # The issue's malformed TIFF family: strip tags with non-integer types.
        bad("tiff_issue_stripoffsets_float", issue_tiff, "image/tiff", 422, CORRUPT),
        bad("tiff_stripoffsets_rational", tiff_strips((5, (130, 1))), "image/tiff", 422, CORRUPT),
        bad("tiff_stripoffsets_srational", tiff_strips((10, (130, 1))), "image/tiff", 422, CORRUPT),
        bad("tiff_stripoffsets_double", tiff_strips((12, 130.0)), "image/tiff", 422, CORRUPT),
        bad(
            "tiff_stripoffsets_rational_0_den",
            tiff_strips((5, (130, 0))),
            "image/tiff",
            422,
            CORRUPT,
        ),
        bad("tiff_stripoffsets_beyond_eof", tiff_strips((4, 10_000)), "image/tiff", 422, CORRUPT),
        ok("tiff_stripbytecounts_float", tiff_strips((4, 122), (11, 64.0)), "image/tiff"),
        ok("tiff_stripbytecounts_rational", tiff_strips((4, 130), (5, (64, 1))), "image/tiff"),
        # Truncated files and header-only files.
        # Small files whose decode costs far more than their pixels (imaging.decode_cost).
        bad("jpeg_many_scans", jpeg_scan_bomb(300, 100), "image/jpeg", 413, "progressive scans"),
        bad("webp_animated_huge_canvas", webp_canvas_bomb(6000), "image/webp", 413, "pixels"),
        BadInput(
            "gif_too_many_frames",
            gif_frame_bomb(MAX_FRAMES + 1),
            "image/gif",
            413,
            "frames",
            per_route={"tfserving_b64": (413, "larger than the limit")},  # 200 KB in base64
        ),
        bad("jpeg_truncated_half", jpeg[: len(jpeg) // 2], "image/jpeg", 422, CORRUPT),
        bad("jpeg_soi_only", b"\xff\xd8", "image/jpeg", 415, NOT_IMAGE),
        bad("jpeg_header_only", jpeg_sof(48, 40), "image/jpeg", 422, CORRUPT),
        bad("jpeg_cut_before_eoi", jpeg[:-2], "image/jpeg", 422, CORRUPT),
        bad("png_truncated_half", png[: len(png) // 2], "image/png", 422, CORRUPT),
        bad("png_signature_only", png[:8], "image/png", 422, CORRUPT),
        bad("png_header_only", png_raw(48, 40, colour=2), "image/png", 422, CORRUPT),
        ok("png_bad_iend_crc", png[:-1] + bytes([png[-1] ^ 0xFF]), "image/png"),
        bad(
            "png_idat_garbage",
            png_raw(48, 40, 8, 0, b"\x78\x9c" + b"\xab" * 40),
            "image/png",
            422,
            CORRUPT,
        ),
        bad("gif_truncated_half", gif[: len(gif) // 2], "image/gif", 422, CORRUPT),
        bad("gif_header_only", gif[:13], "image/gif", 422, CORRUPT),
        bad("bmp_truncated_half", bmp[: len(bmp) // 2], "image/bmp", 422, CORRUPT),
        bad("bmp_header_only", bmp_header(48, 40), "image/bmp", 422, CORRUPT),
        bad("webp_truncated_half", webp[: len(webp) // 2], "image/webp", 422, CORRUPT),
        bad("webp_riff_header_only", webp[:12], "image/webp", 415, NOT_IMAGE),
        bad("tiff_truncated_half", tiff[: len(tiff) // 2], "image/tiff", 422, CORRUPT),
        bad("tiff_header_only", b"II*\0\x08\0\0\0", "image/tiff", 422, CORRUPT),
        # Decompression bombs: declared sizes far above the limit, and a real deflate bomb.
        bad("png_bomb_deflate_64mp", png_bomb(8000), "image/png", 413, TOO_MANY_PIXELS),
        bad(
            "png_bomb_declared_4gp",
            png_raw(65535, 65535, idat=zlib.compress(b"\0" * 64)),
            "image/png",
            413,
            TOO_MANY_PIXELS,
        ),
        bad("gif_bomb_declared", gif_header(65535, 65535), "image/gif", 413, TOO_MANY_PIXELS),
        bad(
            "gif_bomb_frame_beyond_screen",
            gif_header(16, 16, (65535, 65535)),
            "image/gif",
            413,
            TOO_MANY_PIXELS,
        ),
        bad(
            "tiff_bomb_declared", tiff_header(100_000, 100_000), "image/tiff", 413, TOO_MANY_PIXELS
        ),
        bad(
            "tiff_bomb_deflate_64mp",
            pillow(Image.new("L", (8000, 8000)), "TIFF", compression="tiff_adobe_deflate"),
            "image/tiff",
            413,
            TOO_MANY_PIXELS,
        ),
        bad("bmp_bomb_declared", bmp_header(30_000, 30_000), "image/bmp", 413, TOO_MANY_PIXELS),
        bad("bmp_bomb_top_down", bmp_header(30_000, -30_000), "image/bmp", 413, TOO_MANY_PIXELS),
        bad(
            "bmp_bomb_rle8",
            bmp_header(20_000, 20_000, bits=8, compression=1),
            "image/bmp",
            413,
            TOO_MANY_PIXELS,
        ),
        bad("jpeg_bomb_declared", jpeg_sof(65_000, 65_000), "image/jpeg", 413, TOO_MANY_PIXELS),
        bad(
            "webp_bomb_declared",
            webp_vp8l_header(16_384, 16_384),
            "image/webp",
            413,
            TOO_MANY_PIXELS,
        ),
        # Zero-size and one-pixel images.
        BadInput(
            "empty_body",
            b"",
            "application/octet-stream",
            415,
            "empty",
            per_route={"predict_raw": (400, "empty")},
        ),
        bad("png_zero_width", png_raw(0, 40, idat=zlib.compress(b"")), "image/png", 422, CORRUPT),
        bad("png_zero_by_zero", png_raw(0, 0, idat=zlib.compress(b"")), "image/png", 422, CORRUPT),
        bad("gif_zero_by_zero", gif_header(0, 0), "image/gif", 422, CORRUPT),
        bad("bmp_zero_width", bmp_header(0, 40), "image/bmp", 422, CORRUPT),
        bad("tiff_zero_width", tiff_header(0, 8), "image/tiff", 422, CORRUPT),
        bad("jpeg_zero_height", jpeg_sof(48, 0), "image/jpeg", 422, CORRUPT),
        ok("png_1x1", pillow(Image.new("RGB", (1, 1), (9, 99, 199)), "PNG")),
        ok("jpeg_1x1", pillow(Image.new("RGB", (1, 1), (9, 99, 199)), "JPEG")),
        ok("gif_1x1", pillow(Image.new("P", (1, 1)), "GIF")),
        ok("bmp_1x1", pillow(Image.new("1", (1, 1)), "BMP")),
        ok("webp_1x1", pillow(Image.new("RGBA", (1, 1)), "WEBP")),
        ok("tiff_1x1", pillow(Image.new("L", (1, 1)), "TIFF")),
        ok("png_1x4000_strip", png_ok(1, 4000)),
        ok("png_4000x1_strip", png_ok(4000, 1)),
        # Every colour mode Pillow writes in a format we read.
        *(
            ok(f"mode_{mode.replace(';', '_')}_{fmt.lower()}", pillow(mode_image(mode), fmt))
            for mode, fmt in [
                ("1", "PNG"),
                ("L", "PNG"),
                ("LA", "PNG"),
                ("P", "PNG"),
                ("RGBA", "PNG"),
                ("I;16", "PNG"),
                ("1", "TIFF"),
                ("I;16", "TIFF"),
                ("I;16B", "TIFF"),
                ("I", "TIFF"),
                ("F", "TIFF"),
                ("CMYK", "TIFF"),
                ("YCbCr", "TIFF"),
                ("LAB", "TIFF"),
                ("RGBA", "TIFF"),
                ("LA", "TIFF"),
                ("CMYK", "JPEG"),
                ("L", "JPEG"),
                ("RGBA", "WEBP"),
                ("L", "BMP"),
                ("P", "BMP"),
            ]
        ),
        ok("mode_P_transparent_gif", pillow(gradient().convert("P"), "GIF", transparency=0)),
        ok(
            "mode_F_nan_inf_tiff", float_tiff([float("nan"), float("inf"), -float("inf"), 1.0, 2.0])
        ),
        ok("mode_F_all_nan_tiff", float_tiff([float("nan")])),
        ok("mode_F_constant_tiff", float_tiff([3.0])),
        ok("png_16bit_rgb", png_raw(2, 1, 16, 2, zlib.compress(b"\0" + b"\xff\x00" * 6))),
        # Animations and multi-image files: the first frame is used.
        ok("gif_animated", animated("GIF")),
        ok("webp_animated", animated("WEBP")),
        ok("png_apng", animated("PNG")),
        ok("tiff_multipage", animated("TIFF")),
        ok("mpo_two_frames", animated("MPO")),
        # Formats Pillow knows but we do not take (415).
        bad("ico", pillow(gradient(32, 32), "ICO"), "image/x-icon", 415, NOT_SUPPORTED),
        bad("tga", pillow(gradient(), "TGA"), "image/x-tga", 415, NOT_SUPPORTED),
        bad("pdf", pillow(gradient(), "PDF"), "application/pdf", 415, NOT_IMAGE),
        bad("jpeg2000_jp2", pillow(gradient(), "JPEG2000"), "image/jp2", 415, NOT_SUPPORTED),
        bad(
            "jpeg2000_codestream",
            pillow(gradient(), "JPEG2000", no_jp2=True),
            "image/jp2",
            415,
            NOT_SUPPORTED,
        ),
        bad("ppm", pillow(gradient(), "PPM"), "image/x-portable-pixmap", 415, NOT_SUPPORTED),
        bad("pcx", pillow(gradient(), "PCX"), "image/x-pcx", 415, NOT_SUPPORTED),
        bad("avif", pillow(gradient(), "AVIF"), "image/avif", 415, NOT_SUPPORTED),
        bad(
            "svg",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="48" height="40"><rect width="48" height="40"/></svg>',
            "image/svg+xml",
            415,
            NOT_IMAGE,
        ),
        bad(
            "svg_billion_laughs",
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><svg>&b;</svg>',
            "image/svg+xml",
            415,
            NOT_IMAGE,
        ),
        bad(
            "html_named_jpeg",
            b"<html><script>alert(1)</script></html>",
            "image/jpeg",
            415,
            NOT_IMAGE,
        ),
        # Polyglots: the first format decides; trailing payloads are ignored.
        ok("polyglot_jpeg_then_zip", jpeg + b"PK\x03\x04" + b"\0" * 26 + b"evil.sh"),
        ok("polyglot_png_then_html", png + b"<html><script>alert(1)</script></html>"),
        ok("polyglot_gif_js_comment", gif + b"*/=alert(1);/*"),
        bad(
            "polyglot_pdf_with_jpeg_inside", b"%PDF-1.4\n" + jpeg, "application/pdf", 415, NOT_IMAGE
        ),
        bad("polyglot_jpeg_soi_then_png", b"\xff\xd8" + png, "image/jpeg", 415, NOT_IMAGE),
        bad(
            "polyglot_zip_then_jpeg",
            b"PK\x03\x04" + b"\0" * 26 + jpeg,
            "application/zip",
            415,
            NOT_IMAGE,
        ),
        # EXIF orientation: every legal value, out-of-range values and the wrong types.
        *(ok(f"exif_orientation_{value}", with_exif_orientation(value)) for value in range(1, 9)),
        ok("exif_orientation_0", with_exif_orientation(0)),
        ok("exif_orientation_9", with_exif_orientation(9)),
        ok("exif_orientation_65535", with_exif_orientation(65535)),
        ok("exif_orientation_long", with_exif_orientation(6, kind=4)),
        ok("exif_orientation_ascii", with_exif_orientation("6", kind=2)),
        ok("exif_orientation_rational", with_exif_orientation(6, kind=5)),
        ok("exif_orientation_6_webp", with_exif_orientation(6, fmt="WEBP")),
        ok("exif_orientation_8_png", with_exif_orientation(8, fmt="PNG")),
        ok(
            "exif_truncated_block",
            pillow(gradient(), "JPEG", exif=b"Exif\0\0MM\0*\0\0\0\x08\0\x05"),
        ),
    ]
    return cases


def _json_cases() -> list[BadInput]:
    """JSON bodies for `/decode_predictions` (scores) and TF Serving `:predict` (instances)."""
    both = JSON_ROUTES
    scores_only, tf_only = ("decode_predictions_json",), ("tfserving_json",)
    deep = b"[" * 10_000 + b"]" * 10_000
    huge_array = b"[" + b"0," * 5_000_000 + b"0]"  # 10 MB
    pixel = [[[0, 0, 0]] * MODEL_SIZE] * MODEL_SIZE

    def row(first: bytes) -> Callable[[int], bytes]:
        """One row of scores for a model with n classes whose first score is `first`."""
        return lambda n: b'{"predictions": [[' + first + b", 0.0" * (n - 1) + b"]]}"

    def case(
        name: str,
        body: Any,
        status: int,
        fragment: str | None,
        routes: tuple[str, ...],
        xfail: str | None = None,
    ) -> BadInput:
        return BadInput(
            name, body, "application/json", status, fragment, "json", routes, xfail=xfail
        )

    return [
        case(
            "json_deep_nesting_list",
            b'{"predictions": ' + deep + b"}",
            400,
            "nest",
            scores_only,
        ),
        case(
            "json_deep_nesting_instances",
            b'{"instances": ' + deep + b"}",
            400,
            "nest",
            tf_only,
        ),
        case(
            "json_deep_nesting_objects",
            b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
            400,
            "nest",
            both,
        ),
        case(
            "json_10mb_array", b'{"predictions": [' + huge_array + b"]}", 413, "bytes", scores_only
        ),
        case("json_10mb_instances", b'{"instances": ' + huge_array + b"}", 413, "bytes", tf_only),
        case("json_nan_score", row(b"NaN"), 422, "NaN", scores_only),
        case("json_infinity_score", row(b"Infinity"), 422, "NaN or Infinity", scores_only),
        case("json_1e400_score", row(b"1e400"), 422, "too large", scores_only),
        case("json_huge_int_score", row(b"1" + b"0" * 400), 422, "too large", scores_only),
        case(
            "json_scores_wrong_width",
            {"predictions": [[0.5, 0.3, 0.2]]},
            422,
            "3 scores",
            scores_only,
        ),
        case("json_scores_flat", {"predictions": [0.5, 0.5]}, 422, "list of lists", scores_only),
        case(
            "json_scores_strings",
            lambda n: {"predictions": [["a"] * n]},
            422,
            "numbers",
            scores_only,
        ),
        case(
            "json_scores_bools",
            lambda n: {"predictions": [[True] * n]},
            422,
            "numbers",
            scores_only,
        ),
        case("json_scores_missing", {"scores": [[0.5, 0.5]]}, 400, "predictions", scores_only),
        case("json_not_an_object", [1, 2, 3], 400, "", both),
        case("json_invalid", b"{", 400, "not valid JSON", both),
        case("json_empty_body", b"", 400, "", both),
        case("json_nan_pixel", b'{"instances": [[[[NaN, 0, 0]]]]}', 422, "NaN", tf_only),
        case("json_1e400_pixel", b'{"instances": [[[[1e400, 0, 0]]]]}', 422, "too large", tf_only),
        case(
            "json_pixel_out_of_range",
            {"instances": [[[[256, 0, 0]] * MODEL_SIZE] * MODEL_SIZE]},
            422,
            "255",
            tf_only,
        ),
        case(
            "json_pixel_wrong_size", {"instances": [[[[0, 0, 0]] * 8] * 8]}, 422, "shape", tf_only
        ),
        case(
            "json_pixel_two_channels",
            {"instances": [[[[0, 0]] * MODEL_SIZE] * MODEL_SIZE]},
            422,
            "shape",
            tf_only,
        ),
        case("json_pixel_ragged", {"instances": [pixel, [[0, 0, 0]]]}, 422, "shape", tf_only),
        case(
            "json_pixel_floats",
            {"instances": [[[[0.5, 0, 0]] * MODEL_SIZE] * MODEL_SIZE]},
            422,
            "integer",
            tf_only,
        ),
        case("json_instances_empty", {"instances": []}, 400, "non-empty", tf_only),
        case(
            "json_instances_and_inputs",
            {"instances": [pixel], "inputs": [pixel]},
            400,
            "exactly one",
            tf_only,
        ),
        case("json_b64_not_string", {"instances": [{"b64": 12}]}, 400, "base64", tf_only),
        case("json_b64_invalid", {"instances": [{"b64": "@@@"}]}, 400, "base64", tf_only),
        case(
            "json_mixed_b64_and_pixels", {"instances": [{"b64": ""}, pixel]}, 400, "mixing", tf_only
        ),
        case(
            "json_unknown_signature",
            {"signature_name": "x", "instances": [pixel]},
            400,
            "signature_name",
            tf_only,
        ),
    ]


def cases() -> list[BadInput]:
    """The whole corpus: image cases first, then JSON cases. Names are unique."""
    corpus = _image_cases() + _json_cases()
    names = [c.name for c in corpus]
    assert len(names) == len(set(names)), "duplicate case names"
    return corpus


def legal_maximum_cases(max_pixels: int = 40_000_000) -> list[tuple[str, Callable[[], bytes]]]:
    """The largest images a service with `max_pixels` accepts, one per costly decode path.

    Returned as builders (they take seconds and tens of MB each). Used by
    bench/bad_input_memory.py: these are what grow a process's memory.
    """
    side = int(max_pixels**0.5) // 16 * 16 - 32  # square, just under the limit
    # WebP's decoder needs about 16 bytes per canvas pixel: its own, lower bound.
    webp_pixels = min(max_pixels, MAX_DECODE_BYTES // DECODE_BYTES_PER_PIXEL["WEBP"])
    webp_side = int(webp_pixels**0.5) // 16 * 16 - 32

    def big(mode: str, fmt: str, side: int = side, **params: Any) -> Callable[[], bytes]:
        def build() -> bytes:
            y, x = np.mgrid[0:side, 0:side].astype(np.uint16)
            grey = ((x ^ y) & 0xFF).astype(np.uint8)  # compressible, not constant
            if mode == "I;16":
                return pillow(Image.fromarray(grey.astype(np.uint16) * 257), fmt, **params)
            image = Image.fromarray(grey, "L")
            if mode == "RGB":
                image = Image.merge(
                    "RGB", (image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), image)
                )
            elif mode != "L":
                image = image.convert(mode)
            return pillow(image, fmt, **params)

        return build

    return [
        (f"png_1bit_{side}x{side}", big("1", "PNG")),
        (f"png_L_{side}x{side}", big("L", "PNG")),
        (f"png_RGB_{side}x{side}", big("RGB", "PNG")),
        (f"png_RGBA_{side}x{side}", big("RGBA", "PNG")),
        (f"png_P_{side}x{side}", big("P", "PNG")),
        (f"png_I16_{side}x{side}", big("I;16", "PNG")),
        (f"gif_{side}x{side}", big("P", "GIF")),
        (f"bmp_1bit_{side}x{side}", big("1", "BMP")),
        (f"tiff_1bit_{side}x{side}", big("1", "TIFF", compression="group4")),
        (f"jpeg_RGB_{side}x{side}", big("RGB", "JPEG", quality=50)),
        (f"webp_L_{webp_side}x{webp_side}", big("L", "WEBP", lossless=True, side=webp_side)),
    ]


def main() -> None:
    for case in cases():
        body = case.payload(2)
        size = len(body) if isinstance(body, bytes) else len(json.dumps(body))
        mark = "  xfail" if case.xfail else ""
        print(f"{case.status}  {case.kind:5}  {size:9d} B  {case.name}{mark}")
    print(f"{len(cases())} cases")


if __name__ == "__main__":
    main()
