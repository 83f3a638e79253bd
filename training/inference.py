"""Run a published SavedModel over image files in batches (evaluate, predict, the gate).

Loads the export exactly as the service does (`tf.saved_model.load`, the
`serving_default` signature) and decodes with the same `imaging.load_image`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from imaging import ImageError, load_image
from training.export import INPUT_NAME, OUTPUT_NAME, SERVING_SIGNATURE
from training.repository import METADATA_FILE, resolve_model_path


@dataclass
class Batch:
    paths: list[Path]  # readable files, in order
    probabilities: np.ndarray  # [len(paths), num_classes]
    errors: list[tuple[Path, str]]  # unreadable files in this batch


class PublishedModel:
    """A model version folder: its metadata and its serving signature."""

    def __init__(self, path: Path) -> None:
        self.path = resolve_model_path(Path(path))
        self.metadata: dict[str, Any] = json.loads((self.path / METADATA_FILE).read_text())
        self.labels: list[str] = list(self.metadata["labels"])
        self.image_size = int(self.metadata["image_size"])
        self._loaded = tf.saved_model.load(str(self.path))
        self._serve = self._loaded.signatures[SERVING_SIGNATURE]

    def predict_pictures(self, pictures: np.ndarray) -> np.ndarray:
        """uint8 `[n, s, s, 3]` -> probabilities `[n, num_classes]`."""
        out = self._serve(**{INPUT_NAME: tf.constant(pictures, dtype=tf.uint8)})
        return np.asarray(out[OUTPUT_NAME].numpy(), dtype=np.float64)

    def predict_files(self, paths: Iterable[Path], batch_size: int = 32) -> Iterator[Batch]:
        """Stream batches: memory stays at one batch of pictures, whatever the file count."""
        chunk: list[Path] = []
        for path in paths:
            chunk.append(Path(path))
            if len(chunk) >= batch_size:
                yield self._batch(chunk)
                chunk = []
        if chunk:
            yield self._batch(chunk)

    def _batch(self, paths: list[Path]) -> Batch:
        pictures, ok, errors = [], [], []
        for path in paths:
            try:
                pictures.append(load_image(path, self.image_size))
                ok.append(path)
            except (ImageError, OSError) as exc:
                errors.append((path, str(exc)))
        probs = (
            self.predict_pictures(np.stack(pictures))
            if pictures
            else np.zeros((0, len(self.labels)))
        )
        return Batch(ok, probs, errors)
