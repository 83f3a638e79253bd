"""Tiny versions that carry an int8 artifact, for the loader and service tests.

    path = publish_int8_tiny(models_dir, photos_dir)  # models_dir/car_truck/<n>/ with int8/

A random-weight VGG16 at 32 px exported like `bench.harness.export_tiny`, then
quantized by the real exporter (`training.quantize.export_int8`) on the photos
of `photos_dir` (`training.demo_data` layout). Its accuracy guard is waived: a
random-weight model answers near 50/50, where int8 may flip a few photos; the
guard itself is tested on fitted models (tests/training/test_quantize.py).
"""

from __future__ import annotations

from pathlib import Path

from bench.support.harness import export_tiny
from modelstore.metadata import read_metadata, write_metadata
from training.quantize import export_int8

SIZE = 32


def split_photos(photos_dir: Path, split: str, labels: list[str]) -> tuple[list[Path], list[int]]:
    paths, classes = [], []
    for index, label in enumerate(labels):
        for path in sorted((photos_dir / split / label).iterdir()):
            paths.append(path)
            classes.append(index)
    return paths, classes


def publish_int8_tiny(models_dir: Path, photos_dir: Path, name: str = "car_truck") -> Path:
    """Publish a version with a ready int8 artifact; its folder."""
    labels = ["car", "truck"]
    path = export_tiny(models_dir, name, labels, SIZE, seed=1)
    train, _ = split_photos(photos_dir, "train", labels)
    valid, valid_labels = split_photos(photos_dir, "valid", labels)
    record = export_int8(
        path, train, valid, valid_labels, SIZE, min_agreement=0.0, max_accuracy_drop=1.0
    )
    if record.status != "ready":
        raise RuntimeError(f"no int8 artifact: {record.reason}")
    meta = read_metadata(path)
    write_metadata(path, meta.model_copy(update={"int8": record}))
    return path
