"""Training speed: cached features vs the "Kaggle course way", and warm-cache retraining.

    PYTHONPATH=. python -m bench.training_speed [--data ../shared/data/cifar10-car-truck]
        [--image-size 64] [--epochs 30] [--out bench/results/training_speed.json]

Three measurements on the same data, same head, same epochs (early stopping
off, so every run really does `--epochs` epochs), all in this one process:

1. cached: `training.fit.fit` with an empty feature cache (so it includes
   computing every feature once, training the head and exporting the version);
2. kaggle: the frozen base inside the model (`uint8 -> preprocess -> VGG16 ->
   head`), `model.fit` on the decoded pictures, so the base runs on every
   training and validation picture in every epoch;
3. retrain: cold fit on 90 % of the training pictures, then a fit after the
   other 10 % were added (warm cache: features only for the new pictures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from imaging import load_image
from training.data import load_dataset
from training.defaults import resolve_auto
from training.fit import FitConfig, class_weights, fit
from training.model import VGGPreprocess, build_base, build_head, resolve_weights

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "cifar10-car-truck"


def kaggle_way(data_dir: Path, cfg: FitConfig) -> dict[str, Any]:
    """The frozen base inside the trained model: recomputed for every picture, every epoch."""
    start = time.monotonic()
    size = int(cfg.image_size)  # resolved: main() replaced every "auto"
    data = load_dataset(data_dir)
    x = np.stack([load_image(p, size) for p in data.train.paths])
    xv = np.stack([load_image(p, size) for p in data.valid.paths])
    y, yv = np.asarray(data.train.labels), np.asarray(data.valid.labels)
    base, _ = build_base(cfg.base_weights, size, seed=cfg.seed)
    preprocess = VGGPreprocess()
    # Same head as `fit`, whose Normalization needs feature statistics: take them from
    # one batch of 64 pictures (inside the timed region; one extra small base pass).
    sample = np.asarray(base(preprocess(x[:64]), training=False))
    keras.utils.set_random_seed(cfg.seed)
    head = build_head(
        sample.shape[1:], len(data.classes), cfg.head, int(cfg.width), cfg.dropout, adapt_to=sample
    )
    inputs = keras.Input((size, size, 3), dtype="uint8")
    model = keras.Model(inputs, head(base(preprocess(inputs), training=False)))
    model.compile(
        keras.optimizers.Adam(cfg.learning_rate),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        x,
        y,
        validation_data=(xv, yv),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        class_weight=class_weights(list(y), 2),
        verbose=2,
    )
    seconds = time.monotonic() - start
    return {
        "seconds": round(seconds, 2),
        "epochs": len(history.history["loss"]),
        "valid_accuracy": round(float(history.history["val_accuracy"][-1]), 4),
    }


def cached_fit(data_dir: Path, cfg: FitConfig, cache: Path, models: Path) -> dict[str, Any]:
    start = time.monotonic()
    result = fit(data_dir, "bench", models, cfg, progress=False, cache_dir=str(cache))
    return {
        "seconds": round(time.monotonic() - start, 2),
        "epochs": len(result.history["loss"]),
        "images_through_base": result.images_through_base,
        "phases": result.seconds,
        # The head after the last epoch is kept (patience >= epochs: early stopping never fires).
        "valid_accuracy": round(result.metrics["accuracy"], 4),
    }


def link_subset(data_dir: Path, out: Path, keep_every: int | None) -> None:
    """Symlink the data set into `out`; with `keep_every=k` leave out every k-th train file."""
    for split in ("train", "valid"):
        for cls in sorted((data_dir / split).iterdir()):
            target = out / split / cls.name
            target.mkdir(parents=True, exist_ok=True)
            for i, f in enumerate(sorted(cls.iterdir())):
                held_out = split == "train" and keep_every and i % keep_every == keep_every - 1
                if not held_out and not (target / f.name).exists():
                    (target / f.name).symlink_to(f.resolve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--base-weights", default="hed")
    parser.add_argument("--skip-kaggle", action="store_true")
    parser.add_argument(
        "--retrain-image-size", type=int, default=None, help="default: --image-size"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/training_speed.json")
    args = parser.parse_args()
    cfg = FitConfig(
        image_size=args.image_size,
        epochs=args.epochs,
        patience=args.epochs,
        base_weights=args.base_weights,
    )
    # The same settings for every run: "auto" resolved once, for these weights.
    cfg, _ = resolve_auto(cfg, resolve_weights(cfg.base_weights)[0])
    data = args.data.resolve()
    results: dict[str, Any] = {
        "data": str(args.data),
        "image_size": args.image_size,
        "epochs": args.epochs,
        "base_weights": args.base_weights,
        "head": cfg.head,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), TF {tf.__version__}",
        "devices": [d.device_type for d in tf.config.list_physical_devices()],
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        results["cached"] = cached_fit(data, cfg, tmp / "cache1", tmp / "models")
        print("cached", results["cached"], flush=True)
        if not args.skip_kaggle:
            results["kaggle"] = kaggle_way(data, cfg)
            print("kaggle", results["kaggle"], flush=True)
            results["speedup"] = round(
                results["kaggle"]["seconds"] / results["cached"]["seconds"], 1
            )
        retrain_cfg = cfg.replace(image_size=args.retrain_image_size or cfg.image_size)
        results["retrain_image_size"] = retrain_cfg.image_size
        link_subset(data, tmp / "subset", keep_every=10)
        cold = cached_fit(tmp / "subset", retrain_cfg, tmp / "cache2", tmp / "models")
        link_subset(data, tmp / "subset", keep_every=None)
        warm = cached_fit(tmp / "subset", retrain_cfg, tmp / "cache2", tmp / "models")
        results["retrain"] = {
            "cold_90pct": cold,
            "warm_after_adding_10pct": warm,
            "ratio": round(warm["seconds"] / cold["seconds"], 3),
        }
        shutil.rmtree(tmp / "models", ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("\n| run | seconds | epochs | valid accuracy |\n|---|---|---|---|")
    rows = [("cached features (cold cache)", results["cached"])]
    if "kaggle" in results:
        rows.append(("Kaggle way (base in the model)", results["kaggle"]))
    rows += [("retrain cold (90 % of train)", cold), ("retrain warm (+10 % new)", warm)]
    for label, r in rows:
        print(f"| {label} | {r['seconds']} | {r['epochs']} | {r['valid_accuracy']} |")
    if "speedup" in results:
        print(f"speed-up cached vs Kaggle way: {results['speedup']}x")
    print(f"warm retrain / cold: {results['retrain']['ratio']}  -> {args.out}")


if __name__ == "__main__":
    main()
