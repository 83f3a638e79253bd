"""The shared preprocessing function: every mode and format in, one uint8 RGB shape out."""

from __future__ import annotations

import base64
import io
import struct
import tracemalloc
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageFile

import imaging.decode
from bench.support.bad_inputs import ISSUE_TIFF_B64, gradient, tiff_strips
from imaging import (
    CorruptImageError,
    ImageTooLargeError,
    NotAnImageError,
    load_image,
)
from tests.conftest import encode


def _halves(mode: str, left: object, right: object) -> Image.Image:
    """A 40x24 picture in `mode`: `left` on the left half, `right` on the right half."""
    img = Image.new(mode, (40, 24), left)  # type: ignore[arg-type]
    img.paste(right, (20, 0, 40, 24))  # type: ignore[arg-type]
    return img


def _paletted(**save: object) -> tuple[Image.Image, dict[str, object]]:
    img = _halves("P", 1, 2)
    img.putpalette([0, 0, 0, 10, 200, 90, 250, 220, 30] + [0] * 759)
    return img, save


RED, SKY = (200, 30, 60), (20, 160, 220)


# Each mode with two colours and the RGB that must come out of each half, worked out by
# hand: alpha composited on white (c * a + 255 * (1 - a)), CMYK as (255 - c - k, ...),
# 16-bit and float greyscale stretched from their real range to 0..255, palettes looked up.
@pytest.mark.parametrize(
    ("case", "fmt", "expected", "tolerance"),
    [
        pytest.param(
            (_halves("RGB", RED, SKY), {"quality": 95}), "JPEG", (RED, SKY), 4, id="RGB-JPEG"
        ),
        pytest.param((_halves("RGB", RED, SKY), {}), "PNG", (RED, SKY), 1, id="RGB-PNG"),
        pytest.param((_halves("RGB", RED, SKY), {}), "BMP", (RED, SKY), 1, id="RGB-BMP"),
        pytest.param(
            (_halves("RGB", RED, SKY), {"quality": 90}), "WEBP", (RED, SKY), 5, id="RGB-WEBP"
        ),
        pytest.param((_halves("L", 40, 210), {}), "PNG", ((40,) * 3, (210,) * 3), 1, id="L-PNG"),
        pytest.param(
            (_halves("RGBA", (*RED, 128), (*SKY, 0)), {}),
            "PNG",
            ((227, 142, 157), (255,) * 3),
            1,
            id="RGBA-PNG",
        ),
        pytest.param(
            (_halves("LA", (40, 255), (0, 102)), {}), "PNG", ((40,) * 3, (153,) * 3), 1, id="LA-PNG"
        ),
        pytest.param(_paletted(), "GIF", ((10, 200, 90), (250, 220, 30)), 1, id="P-GIF"),
        pytest.param(
            _paletted(transparency=2), "PNG", ((10, 200, 90), (255,) * 3), 1, id="P-PNG-transparent"
        ),
        pytest.param(
            (_halves("CMYK", (0, 200, 100, 0), (255, 0, 0, 55)), {}),
            "TIFF",
            ((255, 55, 155), (0, 200, 200)),
            1,
            id="CMYK-TIFF",
        ),
        pytest.param(
            (_halves("CMYK", (0, 200, 100, 0), (255, 0, 0, 55)), {"quality": 95}),
            "JPEG",
            ((255, 55, 155), (0, 200, 200)),
            4,
            id="CMYK-JPEG",
        ),
        pytest.param(
            (_halves("I;16", 1000, 3000), {}), "TIFF", ((0,) * 3, (255,) * 3), 1, id="I16-TIFF"
        ),
        pytest.param(
            (_halves("I;16", 1000, 3000), {}), "PNG", ((0,) * 3, (255,) * 3), 1, id="I16-PNG"
        ),
        pytest.param((_halves("F", -1.5, 2.5), {}), "TIFF", ((0,) * 3, (255,) * 3), 1, id="F-TIFF"),
        pytest.param((_halves("1", 0, 1), {}), "BMP", ((0,) * 3, (255,) * 3), 1, id="1-BMP"),
    ],
)
def test_load_image_any_mode_gives_uint8_rgb(
    case: tuple[Image.Image, dict[str, object]],
    fmt: str,
    expected: tuple[tuple[int, ...], tuple[int, ...]],
    tolerance: int,
) -> None:
    img, save = case
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    assert Image.open(io.BytesIO(buf.getvalue())).mode == img.mode  # the mode really travels
    out = load_image(buf.getvalue(), 32)
    assert out.shape == (32, 32, 3)
    assert out.dtype == np.uint8
    # Columns well inside each half (the resize blends only the middle ones).
    for column, colour in ((2, expected[0]), (29, expected[1])):
        got = out[:, column].astype(int)
        assert np.abs(got - colour).max() <= tolerance, (img.mode, fmt, column, got[16], colour)


def test_load_image_keeps_colour_of_flat_image() -> None:
    data = encode(np.full((50, 70, 3), (200, 30, 60), np.uint8))
    out = load_image(data, 32)
    assert np.abs(out.astype(int) - (200, 30, 60)).max() <= 1


def test_load_image_transparent_pixels_become_white() -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)  # fully transparent black
    out = load_image(encode(rgba), 32)
    assert (out == 255).all()


def test_load_image_applies_exif_orientation() -> None:
    # Left half red, right half blue; orientation 6 says "rotate 90 degrees clockwise to view".
    array = np.zeros((64, 128, 3), np.uint8)
    array[:, :64] = (255, 0, 0)
    array[:, 64:] = (0, 0, 255)
    img = Image.fromarray(array)
    exif = img.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, quality=95)
    out = load_image(buf.getvalue(), 64)
    # After the rotation red is on top and blue at the bottom.
    assert out[5, 32, 0] > 200 and out[5, 32, 2] < 60
    assert out[58, 32, 2] > 200 and out[58, 32, 0] < 60


def test_load_image_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (20, 20), c) for c in ((0, 255, 0), (255, 0, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    out = load_image(buf.getvalue(), 32)
    assert out[16, 16, 1] > 200 and out[16, 16, 0] < 60


def test_load_image_from_path_equals_from_bytes(tmp_path, rng) -> None:
    data = encode(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    path = tmp_path / "x.png"
    path.write_bytes(data)
    assert np.array_equal(load_image(path, 32), load_image(data, 32))


def test_load_image_text_is_not_an_image() -> None:
    with pytest.raises(NotAnImageError, match="not a supported image"):
        load_image(b"hello, I am text", 32)


def test_load_image_empty_is_not_an_image() -> None:
    with pytest.raises(NotAnImageError, match="empty"):
        load_image(b"", 32)


def test_load_image_truncated_jpeg_is_corrupt(rng) -> None:
    data = encode(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "JPEG")
    with pytest.raises(CorruptImageError):
        load_image(data[: len(data) // 2], 32)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width x height` RGB pixels but carries only a few bytes of them."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(64))[:10]
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _bmp_header(width: int, height: int) -> bytes:
    """A 24-bit BMP header for `width x height` pixels, and no pixel data at all."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


@pytest.mark.parametrize("header", [_png_header, _bmp_header], ids=["png", "bmp"])
def test_load_image_pixel_limit_checked_before_decoding(
    header: Callable[[int, int], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 12000 x 12000: under Pillow's own bomb limit, over ours. Decoding it would allocate
    # 432 MB; a decode that starts at all hits the patched load (and these few bytes
    # would then be reported as a truncated image, not a too-large one).
    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("the pixels were decoded before the size was checked")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageTooLargeError, match="12000x12000 = 144000000 pixels"):
        load_image(header(12000, 12000), 32)
    with pytest.raises(ImageTooLargeError, match="40x30 = 1200 pixels"):
        load_image(header(40, 30), 32, max_pixels=1199)


@pytest.mark.parametrize(
    "tiff",
    [
        base64.b64decode(ISSUE_TIFF_B64),  # StripOffsets typed FLOAT
        tiff_strips((5, (130, 1))),  # typed RATIONAL
        tiff_strips((12, 130.0)),  # typed DOUBLE
    ],
    ids=["float", "rational", "double"],
)
def test_load_image_tiff_with_non_integer_strip_offsets_is_corrupt(tiff: bytes) -> None:
    # Pillow raises TypeError inside load() for these; it must not escape as one.
    with pytest.raises(CorruptImageError, match="corrupt"):
        load_image(tiff, 32)


@pytest.mark.parametrize(
    "error",
    [TypeError("t"), struct.error("s"), ZeroDivisionError("z"), KeyError("k"), RuntimeError()],
    ids=lambda e: type(e).__name__,
)
def test_load_image_any_decoder_exception_is_corrupt(
    error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object) -> None:
        raise error

    monkeypatch.setattr(imaging.decode, "_rgb_resized", fail)
    with pytest.raises(CorruptImageError, match="truncated or corrupt") as caught:
        load_image(encode(np.zeros((8, 8, 3), np.uint8)), 32)
    assert caught.value.__cause__ is error


def test_load_image_memory_error_is_not_an_image_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Running out of memory says nothing about the input: it must not become a 422.
    def fail(*args: object) -> None:
        raise MemoryError

    monkeypatch.setattr(imaging.decode, "_rgb_resized", fail)
    with pytest.raises(MemoryError):
        load_image(encode(np.zeros((8, 8, 3), np.uint8)), 32)


def test_load_image_supported_signature_without_header_is_corrupt() -> None:
    # Starts like a PNG: a corrupt image (422), not "not an image" (415).
    with pytest.raises(CorruptImageError, match="starts like a supported image"):
        load_image(b"\x89PNG\r\n\x1a\n", 32)
    with pytest.raises(NotAnImageError):
        load_image(b"%PDF-1.4\n" + encode(np.zeros((8, 8, 3), np.uint8), "JPEG"), 32)


def test_load_image_float_image_non_finite_values_do_not_spoil_the_rest() -> None:
    values = np.tile(np.array([np.nan, -np.inf, 0.0, 1.0, 2.0, np.inf], np.float32), (6, 1))
    buf = io.BytesIO()
    Image.fromarray(values, "F").save(buf, "TIFF")
    out = load_image(buf.getvalue(), 6)[0, :, 0]
    # Finite 0..2 spans 0..255; NaN and -inf are the darkest, +inf the brightest.
    assert out.tolist() == [0, 0, 0, 128, 255, 255]


def test_load_image_16bit_is_scaled_without_a_full_float64_copy() -> None:
    ramp = (np.arange(1500 * 1400, dtype=np.uint32).reshape(1400, 1500) % 65536).astype(np.uint16)
    data = encode(ramp, "PNG")
    tracemalloc.start()  # numpy reports its buffers to tracemalloc; Pillow's do not count
    try:
        out = load_image(data, 32)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (32, 32, 3)
    # Less than one float64 copy of the 2.1 megapixels (16.8 MB); the old code needed four.
    assert peak < 8 * ramp.size, peak


def test_load_image_returns_memory_after_large_decodes_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []
    monkeypatch.setattr(imaging.decode, "release_free_memory", lambda: calls.append(1))
    load_image(encode(np.zeros((100, 100, 3), np.uint8)), 32)
    assert calls == []
    big = encode(np.zeros((2000, 2000), np.uint8))  # 4 megapixels
    load_image(big, 32)
    assert calls == [1]
    with pytest.raises(CorruptImageError):  # also when the large decode fails half-way
        load_image(big[: len(big) // 2], 32)
    assert calls == [1, 1]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_load_image_every_exif_orientation_is_applied(orientation: int) -> None:
    # Same JPEG bytes with different orientation tags: the pixels must be the upright
    # picture's, transposed as EXIF says (Pillow's ROTATE_90 is counter-clockwise).
    picture = gradient(40, 40)

    def jpeg(value: int) -> bytes:
        exif = picture.getexif()
        exif[0x0112] = value
        buf = io.BytesIO()
        picture.save(buf, "JPEG", exif=exif, quality=95)
        return buf.getvalue()

    upright = load_image(jpeg(1), 32).astype(int)
    expected = {
        1: upright,
        2: upright[:, ::-1],
        3: upright[::-1, ::-1],
        4: upright[::-1],
        5: upright.transpose(1, 0, 2),
        6: np.rot90(upright, -1),
        7: upright.transpose(1, 0, 2)[::-1, ::-1],
        8: np.rot90(upright, 1),
    }[orientation]
    # Resizing after the transposition rounds a few pixels the other way.
    assert np.abs(load_image(jpeg(orientation), 32) - expected).max() <= 2
