"""Give memory freed after a large decode back to the operating system (glibc only).

A 40-megapixel image costs 40 to 160 MB of pixel buffers while it is decoded.
glibc's malloc keeps memory it got for large blocks once they are freed: after
the first large free it raises its mmap threshold (up to 32 MB), so later
blocks of that size come from the heap of the decoding thread's arena, and a
heap only shrinks from its top. The process then keeps its peak for good, per
arena: bench/bad_input_memory.py measured +200 MB of RSS after the bad-input
corpus that way. `malloc_trim(0)` returns every arena's free pages to the
kernel (`MADV_DONTNEED`); it costs about a millisecond, so `load_image` calls it
only after images large enough to matter.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library this process runs on
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the C heap's free pages to the OS; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
