"""What can go wrong turning bytes into a picture; each error maps to one HTTP status."""

from __future__ import annotations


class ImageError(ValueError):
    """Base class: the input could not be turned into a picture."""


class NotAnImageError(ImageError):
    """The bytes are not in any supported image format (HTTP 415)."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than allowed (HTTP 413)."""


class ImageTooCostlyError(ImageTooLargeError):
    """Decoding would cost far more time or memory than the pixel count says (HTTP 413):
    too many JPEG scans, a WebP canvas past the memory budget, too many frames."""


class CorruptImageError(ImageError):
    """The bytes look like an image but do not decode (HTTP 422)."""
