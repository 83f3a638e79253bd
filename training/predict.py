"""Batch scoring job: files and folders in, one JSON line per image out.

    python -m training predict --model models/car_truck photos/ more.jpg > scores.jsonl

Each line: `path`, best `label` and its `class_id` (the class index, or the WordNet id
for an ImageNet export, as the service answers), its `score`, and `scores` of every
class keyed by label (by WordNet id for ImageNet exports, whose labels repeat), and
for a version with an unknown scorer `unknown_score` (higher = less like the
training photos) and `unknown` (above the version's calibrated threshold).
Files are streamed in batches, so memory stays flat for any number of files.
An unreadable file gives a line with an `error`, never a crash.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from imaging import ImageError, load_image
from modelstore.loader import PublishedModel, load_published
from modelstore.runtime import configure_runtime
from modelstore.split_loader import PublishedHead
from modelstore.unknown import UNKNOWN_FLAG_NAME, UNKNOWN_SCORE_NAME
from training.progress import ProgressBar


@dataclass
class Batch:
    paths: list[Path]  # readable files, in order
    probabilities: np.ndarray  # [len(paths), num_classes]
    errors: list[tuple[Path, str]]  # unreadable files in this batch, with the reason
    unknown_scores: np.ndarray | None = None  # [len(paths)]; None without a scorer


def score_files(
    model: PublishedModel, paths: Iterable[Path], batch_size: int = 32
) -> Iterator[Batch]:
    """Decode (`imaging.load_image`, like the service) and score files in batches.

    Streamed: memory stays at one batch of pictures, whatever the file count.
    """
    chunk: list[Path] = []
    for path in paths:
        chunk.append(Path(path))
        if len(chunk) >= batch_size:
            yield _score_batch(model, chunk)
            chunk = []
    if chunk:
        yield _score_batch(model, chunk)


def _score_batch(model: PublishedModel, paths: list[Path]) -> Batch:
    pictures, ok, errors = [], [], []
    for path in paths:
        try:
            pictures.append(load_image(path, model.image_size))
            ok.append(path)
        except (ImageError, OSError) as exc:
            errors.append((path, str(exc)))
    if not pictures:
        return Batch(ok, np.zeros((0, len(model.labels)), np.float32), errors)
    probs, scores = score_pictures(model, np.stack(pictures))
    return Batch(ok, probs, errors, scores)


def score_pictures(
    model: PublishedModel, pictures: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities and, for a version with a scorer, unknown scores (one base pass)."""
    if model.beyond is None:
        return model.predict(pictures), None
    return model.predict_with_unknown(pictures)


def iter_files(inputs: Iterable[Path]) -> Iterator[Path]:
    """Files as given, and every visible file below each folder (walked lazily, sorted)."""
    for item in inputs:
        item = Path(item)
        if not item.is_dir():
            yield item
            continue
        for root, dirs, files in os.walk(item):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    yield Path(root) / name


def score_record(
    path: object,
    probs: np.ndarray,
    model: PublishedModel | PublishedHead,
    unknown_score: float | None = None,
) -> dict[str, object]:
    """The JSON record of one scored image (both engines write exactly this)."""
    # `scores` is keyed by label, except for models with a class index (ImageNet): two of
    # its classes are both named "crane" (and two "maillot"), so labels would merge them;
    # their WordNet ids are unique and are what `class_id` reports.
    keys = model.class_ids if model.metadata.class_index is not None else model.labels
    best = int(probs.argmax())
    record: dict[str, object] = {
        "path": str(path),
        "label": model.labels[best],
        "class_id": model.class_ids[best],
        "score": float(probs[best]),
        "scores": {str(key): float(p) for key, p in zip(keys, probs, strict=True)},
    }
    if model.beyond is not None and unknown_score is not None:
        record[UNKNOWN_SCORE_NAME] = float(unknown_score)
        record[UNKNOWN_FLAG_NAME] = bool(unknown_score > model.beyond.threshold)
    return record


def error_record(path: object, message: str) -> dict[str, object]:
    """The JSON record of a file that could not be scored."""
    return {"path": str(path), "error": message}


def predict_to_stream(
    model_path: Path,
    inputs: list[Path],
    out: TextIO,
    batch_size: int = 32,
    progress: bool = True,
    precision: str = "auto",
) -> tuple[int, int]:
    """Write one JSON line per file to `out`; returns (scored, failed)."""
    model = load_published(Path(model_path), configure_runtime(precision))
    total = sum(1 for _ in iter_files(inputs))  # a count only, for the progress bar
    bar = ProgressBar(total, "predict", enabled=progress)
    scored = failed = 0
    for batch in score_files(model, iter_files(inputs), batch_size):
        scores = batch.unknown_scores
        for i, (path, probs) in enumerate(zip(batch.paths, batch.probabilities, strict=True)):
            score = None if scores is None else float(scores[i])
            out.write(json.dumps(score_record(path, probs, model, score)) + "\n")
        for path, message in batch.errors:
            out.write(json.dumps(error_record(path, message)) + "\n")
        out.flush()
        scored += len(batch.paths)
        failed += len(batch.errors)
        bar.update(len(batch.paths) + len(batch.errors))
    bar.close()
    return scored, failed
