"""Costly-but-small images are refused before decoding (imaging.decode_cost), and
ordinary ones right under each bound still decode."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from bench.support.bad_inputs import animated, gradient, pillow
from bench.support.decode_bombs import (
    gif_frame_bomb,
    jpeg_scan_bomb,
    webp_canvas_bomb,
)
from imaging import ImageTooCostlyError, ImageTooLargeError, load_image
from imaging.decode_cost import (
    MAX_FRAMES,
    MAX_JPEG_SCANS,
    gif_frame_count,
    jpeg_scan_count,
    tiff_page_count,
)

SIZE = 32


def test_jpeg_with_many_scans_is_refused_as_too_large() -> None:
    bomb = jpeg_scan_bomb(side=300, scans=MAX_JPEG_SCANS)  # 10 scans + 64 repeats
    with pytest.raises(ImageTooCostlyError, match="progressive scans") as caught:
        load_image(bomb, SIZE)
    assert isinstance(caught.value, ImageTooLargeError)  # 413 everywhere ImageTooLarge is


def test_jpeg_at_the_scan_bound_decodes() -> None:
    ok = jpeg_scan_bomb(side=300, scans=MAX_JPEG_SCANS - 10)  # exactly MAX_JPEG_SCANS
    assert jpeg_scan_count(ok, stop_after=10**6) == MAX_JPEG_SCANS
    assert load_image(ok, SIZE).shape == (SIZE, SIZE, 3)


def test_jpeg_scan_count_of_standard_encodings() -> None:
    picture = gradient(64, 48)
    assert jpeg_scan_count(pillow(picture, "JPEG")) == 1
    assert jpeg_scan_count(pillow(picture, "JPEG", progressive=True)) == 10
    # Counting stops once the bound is passed: a 5,000-scan file is not walked to its end.
    assert jpeg_scan_count(jpeg_scan_bomb(64, 5000), stop_after=20) == 21


@pytest.mark.parametrize("animation", [True, False], ids=["animated", "still"])
def test_webp_with_a_huge_canvas_is_refused(animation: bool) -> None:
    bomb = webp_canvas_bomb(6000, animated=animation)
    assert len(bomb) < 2000
    with pytest.raises(ImageTooCostlyError, match="WEBP canvas is 6000x6000"):
        load_image(bomb, SIZE)


def test_webp_with_a_canvas_under_the_budget_decodes() -> None:
    assert load_image(webp_canvas_bomb(1000), SIZE).shape == (SIZE, SIZE, 3)


def test_gif_with_too_many_frames_is_refused() -> None:
    bomb = gif_frame_bomb(MAX_FRAMES + 1)
    assert gif_frame_count(bomb) == MAX_FRAMES + 1
    with pytest.raises(ImageTooCostlyError, match="frames"):
        load_image(bomb, SIZE)
    assert load_image(gif_frame_bomb(3), SIZE).shape == (SIZE, SIZE, 3)


def test_animations_count_their_frames() -> None:
    assert gif_frame_count(animated("GIF")) == 3
    assert tiff_page_count(animated("TIFF")) == 3
    assert tiff_page_count(pillow(gradient(), "TIFF")) == 1


def _set_apng_frames(png: bytes, frames: int) -> bytes:
    """Patch an APNG's acTL num_frames (and its CRC)."""
    at = png.index(b"acTL") - 4
    body = struct.pack(">II", frames, 0)
    chunk = b"acTL" + body
    return (
        png[:at]
        + struct.pack(">I", 8)
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + png[at + 20 :]
    )


def test_apng_declaring_too_many_frames_is_refused() -> None:
    bomb = _set_apng_frames(animated("PNG"), MAX_FRAMES + 1)
    with Image.open(io.BytesIO(bomb)) as img:
        assert img.n_frames == MAX_FRAMES + 1  # read from the header at open, nothing decoded
    with pytest.raises(ImageTooCostlyError, match="frames"):
        load_image(bomb, SIZE)


def _tiff_page_chain(pages: int) -> bytes:
    """A valid 1x1 TIFF whose first page is followed by `pages - 1` empty IFDs."""
    first = pillow(Image.new("L", (1, 1)), "TIFF")
    order = "<" if first[:2] == b"II" else ">"
    ifd = struct.unpack_from(order + "I", first, 4)[0]
    entries = struct.unpack_from(order + "H", first, ifd)[0]
    next_at = ifd + 2 + 12 * entries
    chain = bytearray(first)
    base = len(chain)
    chain[next_at : next_at + 4] = struct.pack(order + "I", base)
    for page in range(1, pages):
        following = base + 6 * page if page < pages - 1 else 0
        chain += struct.pack(order + "HI", 0, following)
    return bytes(chain)


def test_tiff_with_too_many_pages_is_refused_and_a_loop_ends_the_count() -> None:
    assert tiff_page_count(_tiff_page_chain(5)) == 5
    with pytest.raises(ImageTooCostlyError, match="pages"):
        load_image(_tiff_page_chain(MAX_FRAMES + 2), SIZE)
    looped = bytearray(_tiff_page_chain(3))
    looped[-4:] = struct.pack("<I", len(looped) - 12)  # the last IFD points back
    assert tiff_page_count(bytes(looped)) == 3
