"""Batch scoring job: files and folders in, one JSON line per image out.

    python -m training predict --model models/car_truck photos/ more.jpg > scores.jsonl

Files are streamed in batches, so memory stays flat for any number of files.
An unreadable file gives a line with an `error`, never a crash.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from training.inference import PublishedModel
from training.progress import ProgressBar


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


def predict_to_stream(
    model_path: Path,
    inputs: list[Path],
    out: TextIO,
    batch_size: int = 32,
    progress: bool = True,
) -> tuple[int, int]:
    """Write one JSON line per file to `out`; returns (scored, failed)."""
    model = PublishedModel(Path(model_path))
    total = sum(1 for _ in iter_files(inputs))  # a count only, for the progress bar
    bar = ProgressBar(total, "predict", enabled=progress)
    scored = failed = 0
    for batch in model.predict_files(iter_files(inputs), batch_size):
        for path, probs in zip(batch.paths, batch.probabilities, strict=True):
            best = int(probs.argmax())
            line = {
                "path": str(path),
                "label": model.labels[best],
                "class_id": best,
                "score": float(probs[best]),
                "scores": {label: float(p) for label, p in zip(model.labels, probs, strict=True)},
            }
            out.write(json.dumps(line) + "\n")
        for path, message in batch.errors:
            out.write(json.dumps({"path": str(path), "error": message}) + "\n")
        out.flush()
        scored += len(batch.paths)
        failed += len(batch.errors)
        bar.update(len(batch.paths) + len(batch.errors))
    bar.close()
    return scored, failed
