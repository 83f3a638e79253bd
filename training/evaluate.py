"""Score a published model on a labelled folder: accuracy, per-class precision/recall, confusion.

    python -m training evaluate --model models/car_truck --data data/demo/valid [--plot cm.png]
        [--ood photos/of/other/things]

`--data` is a folder of class sub-folders; a data set root with `valid/` uses that.
Class folders are matched to the model's labels by name. `--ood`: a folder of
pictures of none of the model's classes; the report then says how well the
version's unknown score tells them from `--data`'s (AUROC, and the share of each
flagged at the version's threshold).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelstore.loader import load_published
from modelstore.runtime import configure_runtime
from training.data import DataError, scan_split
from training.predict import iter_files, score_files
from training.progress import ProgressBar
from training.scores import classification_metrics, unknown_detection


def evaluate(
    model_path: Path,
    data_dir: Path,
    batch_size: int = 32,
    progress: bool = True,
    precision: str = "auto",
    ood_dir: Path | None = None,
) -> dict[str, Any]:
    """Metrics of the model version at `model_path` on the images under `data_dir`
    (and of its unknown score against the pictures under `ood_dir`, when given)."""
    data_dir = Path(data_dir)
    folder = data_dir / "valid" if (data_dir / "valid").is_dir() else data_dir
    model = load_published(Path(model_path), configure_runtime(precision))
    if ood_dir is not None and model.beyond is None:
        raise DataError(
            f"--ood: {model.name} version {model.version} has no unknown scorer to evaluate "
            "(versions fitted by this release have one)"
        )
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [n for n in names if n not in model.labels]
    if unknown:
        raise DataError(
            f"class folders {unknown} in {folder} are not labels of the model ({model.labels})"
        )
    _, split = scan_split(folder, model.labels)
    truth = dict(zip(split.paths, split.labels, strict=True))
    y_true: list[int] = []
    probs: list[np.ndarray] = []
    inside: list[np.ndarray] = []  # unknown scores of the in-distribution pictures
    skipped: dict[str, str] = {}
    bar = ProgressBar(len(split), "evaluate", enabled=progress)
    for batch in score_files(model, split.paths, batch_size):
        y_true.extend(truth[p] for p in batch.paths)
        probs.append(batch.probabilities)
        if batch.unknown_scores is not None:
            inside.append(batch.unknown_scores)
        skipped.update({str(p): msg for p, msg in batch.errors})
        bar.update(len(batch.paths) + len(batch.errors))
    bar.close()
    scores = np.concatenate(probs) if probs else np.zeros((0, len(model.labels)))
    result = classification_metrics(np.asarray(y_true), scores, model.labels)
    detection = None
    if ood_dir is not None and model.beyond is not None:
        outside: list[np.ndarray] = []
        for batch in score_files(model, iter_files([Path(ood_dir)]), batch_size):
            if batch.unknown_scores is not None:
                outside.append(batch.unknown_scores)
            skipped.update({str(p): msg for p, msg in batch.errors})
        if not outside or not inside:
            raise DataError(f"--ood {ood_dir} holds no readable picture")
        detection = {
            "ood_data": str(ood_dir),
            "method": model.beyond.record.method,
            **unknown_detection(
                np.concatenate(inside), np.concatenate(outside), model.beyond.threshold
            ),
        }
    return {
        "model": model.name,
        "version": model.version,
        "path": str(model.path),
        "precision": model.precision,
        "data": str(folder),
        "labels": model.labels,
        **result,
        **({"unknown_detection": detection} if detection is not None else {}),
        "skipped_files": skipped,
    }
