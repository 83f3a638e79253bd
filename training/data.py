"""Find a labelled data set on disk: one sub-folder per class, split into train and valid.

Accepted layouts:
- `DIR/train/<class>/*` and `DIR/valid/<class>/*` (the split is given);
- `DIR/<class>/*` with a validation fraction (stratified, seeded split).

Only listing happens here; whether a file really is a picture is decided when
it is decoded (`training.features.extractor`), which reports unreadable files.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path


class DataError(ValueError):
    """The data folder cannot be used as it is; the message names the folder."""


@dataclass
class Split:
    """Files and their integer labels (index into `DataSet.classes`)."""

    paths: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self, classes: list[str]) -> dict[str, int]:
        return {name: self.labels.count(i) for i, name in enumerate(classes)}

    def without(self, drop: set[Path]) -> Split:
        kept = [(p, y) for p, y in zip(self.paths, self.labels, strict=True) if p not in drop]
        return Split([p for p, _ in kept], [y for _, y in kept])


@dataclass
class DataSet:
    root: Path
    classes: list[str]
    train: Split
    valid: Split
    class_dirs: dict[str, list[Path]]  # for error messages: where each class came from

    def without(self, drop: set[Path]) -> DataSet:
        """The data set less `drop` (unreadable files); a class left empty is an error."""
        train, valid = self.train.without(drop), self.valid.without(drop)
        for split_name, split in (("train", train), ("valid", valid)):
            for name, count in split.counts(self.classes).items():
                if count == 0:
                    folders = ", ".join(str(d) for d in self.class_dirs[name])
                    raise DataError(
                        f"class {name!r} has no readable {split_name} image in {folders}"
                    )
        return DataSet(self.root, self.classes, train, valid, self.class_dirs)


def _files(folder: Path) -> list[Path]:
    """Every visible regular file below `folder`, sorted (so runs are reproducible)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def class_folders(folder: Path) -> dict[str, Path]:
    """`{class name: folder}` for the visible sub-folders of `folder`, sorted by name."""
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist or is not a folder")
    found = {
        p.name: p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")
    }
    if len(found) < 2:
        raise DataError(
            f"data folder {folder} has {len(found)} class sub-folder(s); a classifier needs at "
            "least two (one sub-folder of images per class)"
        )
    return found


def scan_split(folder: Path, classes: list[str] | None = None) -> tuple[list[str], Split]:
    """List `folder/<class>/*`. With `classes` given, folder names must be among them."""
    found = class_folders(folder)
    names = classes if classes is not None else list(found)
    split = Split()
    for name, path in found.items():
        if name not in names:
            raise DataError(f"class folder {path} is not one of the classes {names}")
        files = _files(path)
        if not files:
            raise DataError(f"class folder {path} holds no files; every class needs images")
        split.paths.extend(files)
        split.labels.extend([names.index(name)] * len(files))
    return names, split


def stratified_split(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Move `fraction` of each class (at least one file) to a validation split, seeded."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"--valid-split must be between 0 and 1, got {fraction}")
    rng = random.Random(seed)
    train, valid = Split(), Split()
    for label in sorted(set(split.labels)):
        paths = [p for p, y in zip(split.paths, split.labels, strict=True) if y == label]
        rng.shuffle(paths)
        n_valid = max(1, round(len(paths) * fraction))
        if n_valid >= len(paths):
            raise DataError(
                f"class {label} has too few files ({len(paths)}) to split off {fraction}"
            )
        for target, chunk in ((valid, paths[:n_valid]), (train, paths[n_valid:])):
            target.paths.extend(sorted(chunk))
            target.labels.extend([label] * len(chunk))
    return train, valid


def load_dataset(data_dir: Path, valid_split: float | None = None, seed: int = 0) -> DataSet:
    """Find the classes and files of a data set (see the module docstring for layouts)."""
    root = Path(data_dir)
    if (root / "train").is_dir() and (root / "valid").is_dir():
        if valid_split is not None:
            raise DataError(f"{root} already has train/ and valid/; drop --valid-split")
        classes, train = scan_split(root / "train")
        _, valid = scan_split(root / "valid", classes)
        dirs = {c: [root / "train" / c, root / "valid" / c] for c in classes}
    else:
        if valid_split is None:
            raise DataError(
                f"{root} has no train/ and valid/ sub-folders; give --valid-split F to hold out "
                "a fraction of each class for validation"
            )
        classes, everything = scan_split(root)
        train, valid = stratified_split(everything, valid_split, seed)
        dirs = {c: [root / c] for c in classes}
    valid_counts = valid.counts(classes)
    for name in classes:
        if valid_counts[name] == 0:
            raise DataError(f"class {name!r} has no validation images in {root}")
    return DataSet(root, classes, train, valid, dirs)


def content_hash(file_hashes: list[tuple[str, str]]) -> str:
    """One hash for a data set: over sorted `(class, sha256 of the file)` pairs."""
    digest = hashlib.sha256()
    for label, sha in sorted(file_hashes):
        digest.update(f"{label}\t{sha}\n".encode())
    return digest.hexdigest()
