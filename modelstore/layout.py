"""The model repository on disk (TensorFlow Serving's layout): `<models_dir>/<name>/<int version>/`.

No TensorFlow here. Rules every writer and reader follows:
- a version is a folder named by a positive ASCII integer; higher is newer;
  anything else under `<name>/` (a file, a hidden folder) is not a version;
- a version is written as a hidden draft (`.tmp-*`) and renamed into place only
  when complete, under the model's publish lock, so a reader never sees half a
  model and two writers never take the same number;
- a number is never reused: `.last-published` remembers the highest ever given,
  so deleting a bad version does not hand its number to the next one.

    with reserve_version(models_dir, "car_truck") as draft:
        ...write the SavedModel and metadata.json into draft.path...
    # on a clean exit the draft becomes models/car_truck/<draft.version>/
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from modelstore.metadata import METADATA_FILE

log = logging.getLogger(__name__)

DRAFT_PREFIX = ".tmp-"
LAST_PUBLISHED_FILE = ".last-published"
LOCK_FILE = ".publish.lock"
# A draft older than this, found while we hold the publish lock, was left by a killed
# writer (live writers hold the lock for the whole life of their draft). The grace
# period covers writers of older releases that made their draft before locking.
STALE_DRAFT_GRACE_S = 600.0


# Longest version accepted: 18 digits always fit in a signed 64-bit integer.
MAX_VERSION_DIGITS = 18


def parse_version(text: str) -> int | None:
    """The one reading of a version number, for folder names, URLs and settings alike.

    A version is a positive integer in canonical decimal: "1", "12". Not "01" (two
    spellings of one version would be two folders or two URLs for it), "0", "1.0",
    "+1", " 1", "1e3", or digits such as "²" that str.isdigit() accepts. None if not.
    """
    if text.isascii() and text.isdigit() and text[0] != "0" and len(text) <= MAX_VERSION_DIGITS:
        return int(text)
    return None


def is_version_name(name: str) -> bool:
    return parse_version(name) is not None


def misnamed_versions(model_dir: Path) -> list[str]:
    """Folders named with digits that are not versions ("092", "0"): ignored, worth a word."""
    if not Path(model_dir).is_dir():
        return []
    return sorted(
        entry.name
        for entry in Path(model_dir).iterdir()
        if entry.is_dir()
        and entry.name.isascii()
        and entry.name.isdigit()
        and not is_version_name(entry.name)
    )


def list_versions(model_dir: Path) -> list[int]:
    """Published integer versions, ascending; drafts, files and other names skipped."""
    if not Path(model_dir).is_dir():
        return []
    return sorted(
        int(entry.name)
        for entry in Path(model_dir).iterdir()
        if entry.is_dir() and is_version_name(entry.name)
    )


def list_models(models_dir: Path) -> list[str]:
    """Model names that have at least one published version."""
    if not Path(models_dir).is_dir():
        return []
    return sorted(
        entry.name
        for entry in Path(models_dir).iterdir()
        if entry.is_dir() and not entry.name.startswith(".") and list_versions(entry)
    )


def latest_version(model_dir: Path) -> int | None:
    versions = list_versions(model_dir)
    return versions[-1] if versions else None


def resolve_model_path(path: Path) -> Path:
    """`models/NAME` -> its latest version folder; `models/NAME/N` -> itself."""
    path = Path(path)
    if (path / METADATA_FILE).is_file():
        return path
    latest = latest_version(path)
    if latest is None:
        raise FileNotFoundError(f"{path} holds no published model version")
    return path / str(latest)


# A name is a folder and a URL path segment (/v1/models/NAME:predict): no ':' or '/',
# no spaces, no leading '.' (hidden: the service skips it) or '-' (read as a flag).
MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def check_model_name(name: str) -> str:
    if not MODEL_NAME.fullmatch(name):
        raise ValueError(
            f"invalid model name {name!r}: use up to 128 letters, digits, '-', '_' or '.', "
            "starting with a letter, a digit or '_'"
        )
    return name


def _last_published(model_dir: Path) -> int:
    try:
        return int((model_dir / LAST_PUBLISHED_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return 0


@contextlib.contextmanager
def publish_lock(model_dir: Path) -> Iterator[None]:
    """Exclusive per-model lock (flock): one publisher at a time picks and writes a number."""
    with open(Path(model_dir) / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def remove_stale_drafts(model_dir: Path, older_than_s: float = STALE_DRAFT_GRACE_S) -> list[Path]:
    """Delete drafts left by killed writers; call only while holding the publish lock."""
    removed = []
    now = time.time()
    for entry in Path(model_dir).glob(f"{DRAFT_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            if entry.is_dir() and now - entry.stat().st_mtime >= older_than_s:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    if removed:
        log.info("removed %d stale draft(s) in %s", len(removed), model_dir)
    return removed


@dataclass(frozen=True)
class Draft:
    """A version being written: fill `path`; it becomes `final_path` on a clean exit."""

    name: str
    version: int
    path: Path
    final_path: Path


@contextlib.contextmanager
def reserve_version(
    models_dir: Path, name: str, stale_after_s: float = STALE_DRAFT_GRACE_S
) -> Iterator[Draft]:
    """Reserve the next version number of `name` and publish the draft on a clean exit.

    The publish lock is held for the whole block, so checks made inside it (a
    quality gate comparing with the latest version) still hold when the version
    appears. On an exception nothing becomes visible and the draft is removed.
    A draft without metadata.json is incomplete and refused.
    """
    model_dir = Path(models_dir) / check_model_name(name)
    model_dir.mkdir(parents=True, exist_ok=True)
    with publish_lock(model_dir):
        remove_stale_drafts(model_dir, stale_after_s)
        version = max(latest_version(model_dir) or 0, _last_published(model_dir)) + 1
        final = model_dir / str(version)
        draft = Draft(name, version, model_dir / f"{DRAFT_PREFIX}{uuid.uuid4().hex}", final)
        draft.path.mkdir()
        try:
            yield draft
            if not (draft.path / METADATA_FILE).is_file():
                raise RuntimeError(f"the draft of {name} v{version} has no {METADATA_FILE}")
            if final.exists():  # never overwrite a published version
                raise FileExistsError(f"{final} already exists")
            os.rename(draft.path, final)
            try:
                (model_dir / LAST_PUBLISHED_FILE).write_text(f"{version}\n")
            except OSError as exc:
                # The version is published and complete: failing the command now would say
                # otherwise. Its folder keeps its number taken while it exists.
                log.warning(
                    "%s v%d is published, but %s could not be written (%s): its number "
                    "could be given again only if its folder is deleted",
                    name,
                    version,
                    model_dir / LAST_PUBLISHED_FILE,
                    exc,
                )
        finally:
            shutil.rmtree(draft.path, ignore_errors=True)  # gone already after the rename
