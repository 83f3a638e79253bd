"""Batch scoring with several models: every model answers every file, one base pass each.

    python -m training predict --model models/car_truck --model models/vans photos/

One JSON line per file: `path` and `models`, a list (in the order given) of
`{model, version, label, class_id, score, scores}` -- each the record a
single-model run writes. Models with the same frozen base (same base identity)
run that base once per batch (`modelstore.model_set`). An unreadable file gives
`{"path": ..., "error": ...}`, never a crash; memory stays at one batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from imaging import ImageError, load_image
from modelstore.model_set import ModelSet, load_model_set
from modelstore.runtime import configure_runtime
from training.predict import error_record, iter_files, score_record
from training.progress import ProgressBar


def _score_batch(
    models: ModelSet, paths: list[Path]
) -> tuple[list[Path], list[np.ndarray], list[tuple[Path, str]]]:
    pictures: dict[int, list[np.ndarray]] = {size: [] for size in models.image_sizes}
    ok, errors = [], []
    for path in paths:
        try:
            decoded = {size: load_image(path, size) for size in models.image_sizes}
        except (ImageError, OSError) as exc:
            errors.append((path, str(exc)))
            continue
        for size, picture in decoded.items():
            pictures[size].append(picture)
        ok.append(path)
    probs = models.predict({s: np.stack(p) for s, p in pictures.items()}) if ok else []
    return ok, probs, errors


def score_many(
    models: ModelSet, paths: Iterable[Path], batch_size: int = 32
) -> Iterator[tuple[list[Path], list[np.ndarray], list[tuple[Path, str]]]]:
    """(readable paths, each model's probabilities, unreadable files) per batch."""
    chunk: list[Path] = []
    for path in paths:
        chunk.append(Path(path))
        if len(chunk) >= batch_size:
            yield _score_batch(models, chunk)
            chunk = []
    if chunk:
        yield _score_batch(models, chunk)


def predict_many_to_stream(
    model_paths: list[Path],
    inputs: list[Path],
    out: TextIO,
    batch_size: int = 32,
    progress: bool = True,
    precision: str = "auto",
) -> tuple[int, int]:
    """Write one JSON line per file to `out`; returns (scored, failed)."""
    models = load_model_set(model_paths, configure_runtime(precision))
    total = sum(1 for _ in iter_files(inputs))  # a count only, for the progress bar
    bar = ProgressBar(total, "predict", enabled=progress)
    scored = failed = 0
    for ok, probs, errors in score_many(models, iter_files(inputs), batch_size):
        for row, path in enumerate(ok):
            answers = []
            for model, p in zip(models.members, probs, strict=True):
                record = score_record(path, p[row], model)
                del record["path"]
                answers.append({"model": model.name, "version": model.version, **record})
            out.write(json.dumps({"path": str(path), "models": answers}) + "\n")
        for path, message in errors:
            out.write(json.dumps(error_record(path, message)) + "\n")
        out.flush()
        scored += len(ok)
        failed += len(errors)
        bar.update(len(ok) + len(errors))
    bar.close()
    return scored, failed
