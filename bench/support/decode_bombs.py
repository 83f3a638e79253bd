"""Small, well-formed images whose decode costs far more than their size or pixel count says.

Built in memory, deterministic, for the decode-cost tests, the decoder fuzz's
mutations, the bad-input corpus and `bench/hostile.py`:
- `jpeg_scan_bomb`: a progressive JPEG whose last scan is repeated thousands
  of times (36 MP and 5,000 scans: 326 KB, 3.3 s of CPU to decode unguarded);
- `webp_canvas_bomb`: a tiny animated WebP whose canvas header says 6000x6000
  (a 140-byte file: +546 MB of memory at peak unguarded), or a flat still one;
- `gif_frame_bomb`: a GIF with more frames than anyone animates.
"""

from __future__ import annotations

import io
import struct

from PIL import Image


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """`(marker, start, end)` of each segment after SOI; a scan's entropy data is in its span.

    Stops where the stream breaks (mutated input), returning what it found so far.
    """
    out = []
    at = 2
    while at + 2 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xD9:
            out.append((marker, at, at + 2))
            break
        if at + 4 > len(data):
            break
        end = at + 2 + struct.unpack_from(">H", data, at + 2)[0]
        if marker == 0xDA:
            while True:
                end = data.find(b"\xff", end)
                if end < 0 or end + 1 >= len(data):
                    return out
                if data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                    end += 2
                    continue
                break
        out.append((marker, at, end))
        at = end
    return out


def repeat_last_scan(jpeg: bytes, times: int) -> bytes:
    """A progressive JPEG with its last scan (small: a refinement) repeated `times` more
    times before EOI; the Huffman tables in force at the end are the ones it uses.

    libjpeg treats the repeats as a bogus progression (a warning, not an error) and
    processes every one over the whole image.
    """
    segments = jpeg_segments(jpeg)
    scans = [s for s in segments if s[0] == 0xDA]
    if not scans or segments[-1][0] != 0xD9:
        return jpeg
    _, start, end = scans[-1]
    eoi = segments[-1][1]
    return jpeg[:eoi] + jpeg[start:end] * times + jpeg[eoi:]


def jpeg_scan_bomb(side: int = 6000, scans: int = 5000) -> bytes:
    """A flat grey `side` x `side` progressive JPEG with `scans` extra scans."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (120, 130, 140)).save(
        buffer, "JPEG", progressive=True, quality=90
    )
    return repeat_last_scan(buffer.getvalue(), scans)


def set_webp_canvas(webp: bytes, width: int, height: int) -> bytes:
    """A WebP with an extended (VP8X) header whose canvas says `width` x `height`."""
    if webp[12:16] != b"VP8X":
        return webp
    out = bytearray(webp)
    out[24:27] = (width - 1).to_bytes(3, "little")
    out[27:30] = (height - 1).to_bytes(3, "little")
    return bytes(out)


def webp_canvas_bomb(side: int = 6000, animated: bool = True) -> bytes:
    """Animated: two 16x16 frames on a `side` x `side` canvas (about 150 bytes). Still: a
    flat `side` x `side` lossless picture (1.4 KB at 6000)."""
    buffer = io.BytesIO()
    if not animated:
        Image.new("RGB", (side, side), (90, 120, 150)).save(buffer, "WEBP", lossless=True)
        return buffer.getvalue()
    frames = [Image.new("RGBA", (16, 16), c) for c in ((0, 200, 0, 255), (200, 0, 0, 128))]
    frames[0].save(
        buffer, "WEBP", lossless=True, save_all=True, append_images=frames[1:], duration=50
    )
    return set_webp_canvas(buffer.getvalue(), side, side)


def gif_frame_bomb(frames: int = 20_000) -> bytes:
    """A 1x1 GIF with `frames` image descriptors (each 1 pixel, 15 bytes)."""
    header = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return header + frame * frames + b"\x3b"
