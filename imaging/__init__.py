"""Image decoding shared by `training` and `service` (no TensorFlow imports here)."""

from imaging.decode import (
    CorruptImageError,
    ImageError,
    ImageTooLargeError,
    NotAnImageError,
    is_image_file,
    load_image,
    untrusted_decode,
)

__all__ = [
    "CorruptImageError",
    "ImageError",
    "ImageTooLargeError",
    "NotAnImageError",
    "is_image_file",
    "load_image",
    "untrusted_decode",
]
