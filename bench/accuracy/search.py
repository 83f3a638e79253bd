"""Search image size and head for the best validation accuracy with a given base.

    PYTHONPATH=. python -m bench.accuracy.search [--data ../shared/data/cifar10-car-truck]
        [--base-weights hed] [--sizes 64 96 128] [--out bench/results/accuracy_search.json]

Features come from the same on-disk cache `fit` uses, and heads are trained
with the same `train_head`, without exporting a version for every trial.
Confirm the winner with a real `python -m training fit` (see docs/training.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from training.data import load_dataset
from training.features.extractor import FeatureExtractor
from training.fit import FitConfig, train_head
from training.model import build_base, truncate_base

REPO = Path(__file__).resolve().parents[2]
HEADS = [  # (head, width, dropout)
    ("flatten", 0, 0.5),
    ("flatten", 256, 0.5),
    ("flatten", 512, 0.5),
    ("gap", 256, 0.5),
    ("gap", 512, 0.3),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared/data/cifar10-car-truck")
    parser.add_argument("--base-weights", default="hed")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--layers", nargs="+", default=["block3_pool", "block4_pool", "block5_pool"]
    )
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/accuracy_search.json")
    args = parser.parse_args()
    data = load_dataset(args.data.resolve())
    y, yv = np.asarray(data.train.labels), np.asarray(data.valid.labels)
    trials = []
    for size, layer in ((s, lyr) for s in args.sizes for lyr in args.layers):
        full, info = build_base(args.base_weights, size)
        extractor = FeatureExtractor(
            truncate_base(full, layer),
            info,
            size,
            args.cache_dir and Path(args.cache_dir),
            layer=layer,
        )
        train = extractor.extract(data.train.paths, flip=True, label=f"train {size}px")
        valid = extractor.extract(data.valid.paths, label=f"valid {size}px")
        assert train.flipped is not None
        for (head, width, dropout), flip, seed in (
            (h, f, s) for h in HEADS for f in (False, True) for s in args.seeds
        ):
            cfg = FitConfig(
                image_size=size,
                base_layer=layer,
                base_weights=args.base_weights,
                head=head,
                width=width,
                dropout=dropout,
                flip_augment=flip,
                seed=seed,
            )
            x, yy = train.values, y
            if flip:
                x, yy = np.concatenate([x, train.flipped]), np.concatenate([y, y])
            start = time.monotonic()
            model, history = train_head(cfg, x, yy, valid.values, yv, len(data.classes))
            probs = model.predict(valid.values, verbose=0)
            accuracy = float((probs.argmax(1) == yv).mean())
            trial = {
                **{
                    k: v
                    for k, v in cfg.model_dump().items()
                    if k
                    in (
                        "image_size",
                        "base_layer",
                        "head",
                        "width",
                        "dropout",
                        "flip_augment",
                        "seed",
                    )
                },
                "valid_accuracy": round(accuracy, 4),
                "epochs_run": len(history["loss"]),
                "head_seconds": round(time.monotonic() - start, 1),
            }
            trials.append(trial)
            print(json.dumps(trial), flush=True)
    trials.sort(key=lambda t: -t["valid_accuracy"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"data": str(args.data), "base_weights": args.base_weights, "trials": trials}, indent=2
        )
        + "\n"
    )
    print("best:", json.dumps(trials[0]))


if __name__ == "__main__":
    main()
