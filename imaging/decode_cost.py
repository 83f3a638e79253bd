"""Refuse images whose decode would cost far more than their pixel count says.

The pixel limit bounds the size of the decoded picture, not the work or memory
spent getting there. Three kinds of small, well-formed files get past it
(measured on this project's 2-core development machine, Pillow 13):

- a progressive JPEG with thousands of scans: every scan walks the whole
  coefficient buffer again, so a 326 KB, 36-megapixel file with 5,000 scans
  takes 3.3 s of CPU (6-10 s under load); a normal progressive JPEG has about
  10 scans (libjpeg's default script), mozjpeg's optimised scripts under 20;
- WebP, still or animated: libwebp's animation decoder (which Pillow uses for
  every WebP) holds several full-canvas RGBA buffers, about 15 bytes per canvas
  pixel, so a 140-byte file with a 36-megapixel canvas adds 546 MB at peak
  (GIF: 4.8 bytes per pixel, PNG: 3.8, both within the pixel limit's budget);
- animations with absurd frame counts, whose containers the decoder walks frame
  by frame before the first one is shown.

Each is refused *before* any pixel is decoded, from the container's own header
fields, in time linear in the file's bytes and stopping as soon as a bound is
passed. Refusing up front (rather than decoding in a worker that is killed when
its budget is spent) is deliberate: a thread running Pillow cannot be stopped,
and a process per decode would cost more than the decodes it guards. Every
decode that passes these checks is bounded by them; `docs/reliability.md` gives
the measured worst cases.
"""

from __future__ import annotations

import struct

from PIL import Image

from imaging.errors import ImageTooCostlyError

# The most scans (SOS markers) a JPEG may have in its first picture. libjpeg writes 10
# for a progressive colour JPEG (6 for greyscale), mozjpeg under 20; 64 leaves room for
# any encoder while bounding a 36 MP decode to well under a second.
MAX_JPEG_SCANS = 64
# The most frames an animated GIF, PNG or WebP (or pages a TIFF) may declare. Only the
# first frame is decoded; the bound stops a container walk over millions of frames.
MAX_FRAMES = 10_000
# Working memory a decode may need, estimated as canvas pixels x bytes per pixel below.
MAX_DECODE_BYTES = 256 * 1024 * 1024
# Measured peak bytes per canvas pixel, for the formats whose decoder needs more than the
# pixel limit already allows for (RGB or RGBA, 3-5 bytes). Pillow decodes every WebP with
# libwebp's animation decoder: 546 MB for a 36 MP canvas, still or animated.
DECODE_BYTES_PER_PIXEL = {"WEBP": 16}

_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field


def jpeg_scan_count(data: bytes, stop_after: int = MAX_JPEG_SCANS) -> int:
    """Scans in the first picture of a JPEG (up to its EOI), counting stops past `stop_after`.

    A malformed stream ends the count where it breaks; the decoder then reports it.
    """
    scans = 0
    at = 2  # after SOI
    size = len(data)
    while at + 4 <= size:
        if data[at] != 0xFF:
            return scans
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker == 0xD9:  # EOI: the first picture ends (an MPO's next ones follow)
            return scans
        if marker in _JPEG_STANDALONE:
            at += 2
            continue
        at += 2 + struct.unpack_from(">H", data, at + 2)[0]
        if marker != 0xDA:
            continue
        scans += 1
        if scans > stop_after:
            return scans
        # Entropy-coded data: up to the next 0xFF that is neither stuffing (FF 00) nor RSTn.
        while True:
            at = data.find(b"\xff", at)
            if at < 0 or at + 1 >= size:
                return scans
            follower = data[at + 1]
            if follower == 0 or 0xD0 <= follower <= 0xD7:
                at += 2
                continue
            break
    return scans


def gif_frame_count(data: bytes, stop_after: int = MAX_FRAMES) -> int:
    """Image descriptors in a GIF, counting stops past `stop_after` or where the file breaks."""
    if len(data) < 13:
        return 0
    at = 13
    flags = data[10]
    if flags & 0x80:  # global colour table
        at += 3 << ((flags & 7) + 1)
    frames = 0
    size = len(data)
    while at < size:
        block = data[at]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            at += 2
        elif block == 0x2C:  # image descriptor: 9 bytes, colour table, LZW code size
            frames += 1
            if frames > stop_after or at + 10 > size:
                break
            local = data[at + 9]
            at += 10
            if local & 0x80:
                at += 3 << ((local & 7) + 1)
            at += 1
        else:
            break
        while at < size and data[at]:  # sub-blocks until the zero-length terminator
            at += 1 + data[at]
        at += 1
    return frames


def tiff_page_count(data: bytes, stop_after: int = MAX_FRAMES) -> int:
    """Pages (IFDs) of a classic TIFF; stops past `stop_after`, at a loop or a broken offset."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or len(data) < 8 or data[2:4] not in (b"*\0", b"\0*"):
        return 0  # BigTIFF or not a TIFF: Pillow reads its first page only
    offset = struct.unpack_from(order + "I", data, 4)[0]
    seen: set[int] = set()
    while offset > 0 and offset + 2 <= len(data) and offset not in seen:
        seen.add(offset)
        if len(seen) > stop_after:
            break
        entries = struct.unpack_from(order + "H", data, offset)[0]
        next_at = offset + 2 + 12 * entries
        if next_at + 4 > len(data):
            break
        offset = struct.unpack_from(order + "I", data, next_at)[0]
    return len(seen)


# Formats whose frame count Pillow reads from a header field at open; for GIF and TIFF
# Pillow's `n_frames` walks the whole file in Python, so those are counted here instead.
HEADER_FRAME_COUNTS = frozenset({"PNG", "WEBP", "MPO"})


def declared_frames(img: Image.Image) -> int:
    """The frame count an opened image declares in its header (1 when it declares none)."""
    if img.format in HEADER_FRAME_COUNTS:
        return int(getattr(img, "n_frames", 1))
    return 1


def frame_count(data: bytes, image_format: str, declared: int) -> int:
    """Frames of an animation or pages of a TIFF, bounded; `declared`: what Pillow read
    from the header at open (WebP and PNG give it without walking the file)."""
    if image_format == "GIF":
        return gif_frame_count(data)
    if image_format == "TIFF":
        return tiff_page_count(data)
    return declared


def check_decode_cost(data: bytes, image_format: str, width: int, height: int, frames: int) -> None:
    """Raise ImageTooCostlyError (HTTP 413) if decoding would cost far more than its pixels.

    `image_format` and the canvas `width` x `height` are what Pillow read at open
    (nothing decoded yet); `frames` is what Pillow declared (1 for a still image).
    """
    if image_format in ("JPEG", "MPO"):
        scans = jpeg_scan_count(data)
        if scans > MAX_JPEG_SCANS:
            raise ImageTooCostlyError(
                f"the JPEG has more than {MAX_JPEG_SCANS} progressive scans, the limit; "
                "save it again as a baseline JPEG or with a standard progressive script"
            )
    per_pixel = DECODE_BYTES_PER_PIXEL.get(image_format)
    if per_pixel is not None and width * height * per_pixel > MAX_DECODE_BYTES:
        most = MAX_DECODE_BYTES // per_pixel
        raise ImageTooCostlyError(
            f"the {image_format} canvas is {width}x{height} = {width * height} pixels; "
            f"decoding {image_format} needs about {per_pixel} bytes per pixel, so the limit "
            f"is {most} pixels: send a smaller image, or a JPEG or PNG"
        )
    count = frame_count(data, image_format, frames)
    if count > MAX_FRAMES:
        kind = "pages" if image_format == "TIFF" else "frames"
        raise ImageTooCostlyError(
            f"the {image_format} has more than {MAX_FRAMES} {kind}, the limit; only the first "
            "is classified: send it as a still image"
        )
