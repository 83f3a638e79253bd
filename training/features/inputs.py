"""What both feature engines do with one file before the base: read, hash, look up, decode.

No TensorFlow here: Ray's decode tasks import this module, and only the actors
holding the base pay for importing TensorFlow.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imaging import ImageError, load_image
from training.features.store import FeatureStore


@dataclass
class Prepared:
    """One file, ready for the base: an error, a store hit (`cached`), or a `picture` to run."""

    sha: str | None = None
    picture: np.ndarray | None = None  # uint8 [s, s, 3], when the features must be computed
    cached: np.ndarray | None = None
    cached_flip: np.ndarray | None = None
    error: str | None = None


def prepare_file(path: str | Path, store: FeatureStore, image_size: int, flip: bool) -> Prepared:
    """Read, hash, look up in the store, and decode only on a miss.

    Both engines call this, so a file is skipped with the same message by either.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return Prepared(error=f"cannot read: {exc}")
    sha = hashlib.sha256(data).hexdigest()
    cached = store.get(sha, False)
    cached_flip = store.get(sha, True) if flip else None
    if cached is not None and (not flip or cached_flip is not None):
        return Prepared(sha=sha, cached=cached, cached_flip=cached_flip)
    try:
        return Prepared(sha=sha, picture=load_image(data, image_size))
    except ImageError as exc:
        return Prepared(sha=sha, error=str(exc))
