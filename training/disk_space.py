"""Telling a full disk from other failures, and saying so in one line a person can act on.

A full disk (or a quota) surfaces as OSError(ENOSPC/EDQUOT) from Python, and as an
error whose message says "No space left on device" from TensorFlow's C++ writers.
`fit` turns either into `error: no space left on device: <path> (<free> free)` and
exit code 6 instead of a traceback; the feature cache treats it as "stop caching".
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a full disk or an exhausted quota."""
    for error in _chain(exc):
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            return True
        if any(text in str(error) for text in DISK_FULL_TEXTS):
            return True
    return False


def failed_path(exc: BaseException) -> str | None:
    """The file the failing call named, when the error carries one."""
    for error in _chain(exc):
        if isinstance(error, OSError) and error.filename:
            return str(error.filename)
    return None


def free_space(path: str | Path) -> str:
    """Free bytes on the file system holding `path` (its nearest existing parent), in words."""
    where = Path(path).absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = float(shutil.disk_usage(where).free)
    except OSError:
        return "free space unknown"
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if free < 1024 or unit == "TB":
            break
        free /= 1024
    return f"{free:.0f} {unit} free" if unit == "bytes" else f"{free:.1f} {unit} free"


def disk_full_message(exc: BaseException, fallback: str | Path) -> str:
    """`no space left on device: <path> (<free> free on its file system)`."""
    path = failed_path(exc) or str(fallback)
    return f"no space left on device writing {path} ({free_space(path)} there)"
