"""Image decoding shared by `training` and `service` (no TensorFlow imports here)."""

from imaging.decode import (
    CorruptImageError,
    ImageError,
    ImageTooCostlyError,
    ImageTooLargeError,
    NotAnImageError,
    is_image_file,
    load_image,
    untrusted_decode,
)

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
