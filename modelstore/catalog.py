"""What a model repository holds: every published version with its metadata, no TensorFlow.

    from modelstore.catalog import catalog
    for entry in catalog(Path("models")):
        print(entry.name, entry.version, entry.accuracy, entry.error)

Reads the layout (modelstore.layout) and each version's metadata.json
(modelstore.metadata) only, so listing a repository takes milliseconds. A
version whose metadata is missing or invalid is listed with `error` set rather
than stopping the listing: that is the version a user needs to see.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelstore.layout import list_models, list_versions
from modelstore.metadata import InvalidModelError, read_metadata


@dataclass
class VersionEntry:
    """One published version; the metadata fields are None when `error` says why."""

    name: str
    version: int
    path: str
    size_bytes: int
    newest: bool = False  # the highest readable version of its model
    accuracy: float | None = None  # on the validation split recorded at training
    base_weights: str | None = None  # imagenet | hed | file | none
    precision: str | None = None
    image_size: int | None = None
    labels: list[str] | None = None
    created_at: str | None = None
    error: str | None = None  # why the version is broken

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def size_on_disk(path: Path) -> int:
    """Bytes of every regular file under `path` (links not followed)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _entry(name: str, version: int, path: Path) -> VersionEntry:
    entry = VersionEntry(name, version, str(path), size_on_disk(path))
    try:
        meta = read_metadata(path)
    except InvalidModelError as exc:
        entry.error = str(exc)
        return entry
    validation = (meta.metrics or {}).get("validation") or {}
    accuracy = validation.get("accuracy")
    entry.accuracy = float(accuracy) if isinstance(accuracy, int | float) else None
    entry.base_weights = meta.base_weights.kind
    entry.precision = meta.precision
    entry.image_size = meta.image_size
    entry.labels = meta.labels
    entry.created_at = meta.created_at
    return entry


def catalog(models_dir: Path) -> list[VersionEntry]:
    """Every published version of every model, by name then version."""
    entries: list[VersionEntry] = []
    for name in list_models(Path(models_dir)):
        model = [
            _entry(name, v, Path(models_dir) / name / str(v))
            for v in list_versions(Path(models_dir) / name)
        ]
        readable = [e for e in model if e.error is None]
        if readable:
            readable[-1].newest = True
        entries.extend(model)
    return entries
