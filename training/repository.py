"""The model repository layout (TensorFlow Serving's): `<models_dir>/<name>/<int version>/`.

No TensorFlow here: the service imports this too. A version is written under a
hidden temporary name and renamed into place only when complete, so a reader
never sees half a model, and a version number is never reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

METADATA_FILE = "metadata.json"
TMP_PREFIX = ".tmp-"
LAST_PUBLISHED_FILE = ".last-published"


def list_versions(model_dir: Path) -> list[int]:
    """Published integer versions, ascending; temporary folders, files, other names skipped."""
    if not model_dir.is_dir():
        return []
    versions = []
    for entry in model_dir.iterdir():
        # ASCII only: str.isdigit() also accepts digits such as "²" that int() rejects.
        name = entry.name
        if entry.is_dir() and name.isascii() and name.isdigit() and int(name) > 0:
            versions.append(int(entry.name))
    return sorted(versions)


def list_models(models_dir: Path) -> list[str]:
    """Model names that have at least one published version."""
    if not models_dir.is_dir():
        return []
    return sorted(
        entry.name
        for entry in models_dir.iterdir()
        if entry.is_dir() and not entry.name.startswith(".") and list_versions(entry)
    )


def latest_version(model_dir: Path) -> int | None:
    versions = list_versions(model_dir)
    return versions[-1] if versions else None


def _last_published(model_dir: Path) -> int:
    try:
        return int((model_dir / LAST_PUBLISHED_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return 0


@contextlib.contextmanager
def _publish_lock(model_dir: Path) -> Iterator[None]:
    # Two jobs publishing the same model at once must not pick the same number.
    with open(model_dir / ".publish.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def publish_version(
    models_dir: Path, name: str, write: Callable[[Path, int], None]
) -> tuple[int, Path]:
    """Write a new version with `write(tmp_dir, version)` and rename it into place atomically.

    `write` receives the version number it will get so it can record it in the
    metadata. If `write` raises, the temporary folder is removed and nothing is
    published. Returns `(version, final_path)`.
    """
    if not name or name.startswith(".") or "/" in name or name != name.strip():
        raise ValueError(f"invalid model name {name!r}")
    model_dir = Path(models_dir) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        with _publish_lock(model_dir):
            # The highest number ever published, not just the highest still on disk: a
            # deleted bad version's number is never handed out again.
            version = max(latest_version(model_dir) or 0, _last_published(model_dir)) + 1
            # Reserve the number while the (slow) write runs; other writers wait on the lock.
            write(tmp, version)
            final = model_dir / str(version)
            if final.exists():  # never overwrite a published version
                raise FileExistsError(f"{final} already exists")
            os.rename(tmp, final)
            (model_dir / LAST_PUBLISHED_FILE).write_text(f"{version}\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return version, final


def resolve_model_path(path: Path) -> Path:
    """`models/NAME` -> its latest version folder; `models/NAME/N` -> itself."""
    path = Path(path)
    if (path / METADATA_FILE).is_file():
        return path
    latest = latest_version(path)
    if latest is None:
        raise FileNotFoundError(f"{path} holds no published model version")
    return path / str(latest)
