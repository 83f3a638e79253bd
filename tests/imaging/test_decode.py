"""The shared preprocessing function: every mode and format in, one uint8 RGB shape out."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imaging import (
    CorruptImageError,
    ImageTooLargeError,
    NotAnImageError,
    load_image,
)
from tests.conftest import encode


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("RGB", "JPEG"),
        ("RGB", "PNG"),
        ("RGB", "BMP"),
        ("RGB", "WEBP"),
        ("L", "PNG"),
        ("RGBA", "PNG"),
        ("P", "GIF"),
        ("I;16", "TIFF"),
        ("CMYK", "TIFF"),
        ("1", "BMP"),
    ],
)
def test_load_image_any_mode_gives_uint8_rgb(mode: str, fmt: str) -> None:
    buf = io.BytesIO()
    Image.new(mode, (40, 24)).save(buf, fmt)
    out = load_image(buf.getvalue(), 32)
    assert out.shape == (32, 32, 3)
    assert out.dtype == np.uint8


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


def test_load_image_pixel_limit_checked_before_decoding() -> None:
    data = encode(np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(ImageTooLargeError, match="10000 pixels"):
        load_image(data, 32, max_pixels=9_999)
