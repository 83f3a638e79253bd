"""Benchmark: does bf16 give the fp32 answers on real photos, and how much faster is a cold fit?

Run: python -m bench.precision_accuracy [--data ../shared/data/cifar10-car-truck]
                                         [--image-size 128] [--precisions fp32,bf16]

In one run, on this machine:
1. a cold `fit` (empty feature cache) per precision, `--base-weights hed`, the
   default cut, on the data's train/ split: wall time per phase and validation
   accuracy;
2. every model so trained is then scored on valid/ in every precision
   (`modelstore.loader` with `configure_runtime(p)`), so both "trained on bf16
   features, served in fp32" and the reverse are measured;
3. the accuracy guard, per trained model: top-1 agreement between precisions
   (target >= 99.5 %), accuracy difference (target <= 0.5 points), largest
   probability difference.
Writes bench/results/precision_accuracy.json (or --out). The photos stay in
../shared (never copied into the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.support.harness import ROOT

RESULTS = ROOT / "bench" / "results" / "precision_accuracy.json"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-car-truck"


def score(model_path: Path, precision: str, files: list[Path]) -> np.ndarray:
    from modelstore.loader import load_published
    from modelstore.runtime import configure_runtime
    from training.predict import score_files

    model = load_published(model_path, configure_runtime(precision))
    batches = list(score_files(model, files, batch_size=64))
    assert all(not b.errors for b in batches), [b.errors for b in batches if b.errors]
    return np.concatenate([b.probabilities for b in batches])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    from training.data import load_dataset
    from training.fit import fit

    precisions = args.precisions.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-precision-"))
    data = load_dataset(args.data)
    files = data.valid.paths
    truth = np.asarray(data.valid.labels)
    report: dict[str, object] = {
        "data": str(args.data),
        "valid_images": len(files),
        "image_size": args.image_size,
        "load_average_at_start": os.getloadavg(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    fits: dict[str, dict[str, object]] = {}
    walls: dict[str, float] = {}
    trained: dict[str, Path] = {}
    for precision in precisions:
        began = time.perf_counter()
        result = fit(
            args.data,
            f"cifar_{precision}",
            work / "models",
            base_weights="hed",
            image_size=args.image_size,
            precision=precision,
            epochs=args.epochs,
            cache_dir=str(work / f"cache-{precision}"),  # cold: nothing cached
            progress=False,
        )
        trained[precision] = result.path
        walls[precision] = time.perf_counter() - began
        fits[precision] = {
            "wall_s": round(walls[precision], 1),
            "seconds_by_phase": result.seconds,
            "validation_accuracy": round(result.metrics["accuracy"], 4),
            "images_through_base": result.images_through_base,
        }
        print(f"fit {precision}: {fits[precision]}", flush=True)
    report["cold_fit"] = fits
    if {"fp32", "bf16"} <= set(walls):
        report["cold_fit_bf16_over_fp32_wall"] = round(walls["bf16"] / walls["fp32"], 3)

    guard: dict[str, dict[str, object]] = {}
    for trained_in, path in trained.items():
        probs = {served_in: score(path, served_in, files) for served_in in precisions}
        row: dict[str, object] = {
            f"accuracy_served_{p}": round(float((probs[p].argmax(1) == truth).mean()), 4)
            for p in precisions
        }
        reference = probs["fp32"]
        for p in precisions:
            if p == "fp32":
                continue
            agree = float((probs[p].argmax(1) == reference.argmax(1)).mean())
            accuracy_gap = abs(
                float((probs[p].argmax(1) == truth).mean())
                - float((reference.argmax(1) == truth).mean())
            )
            row[f"top1_agreement_{p}_vs_fp32"] = round(agree, 4)
            row[f"accuracy_points_{p}_minus_fp32"] = round(100 * accuracy_gap, 2)
            row[f"max_probability_diff_{p}_vs_fp32"] = round(
                float(np.abs(probs[p] - reference).max()), 5
            )
            row["meets_guard"] = agree >= 0.995 and 100 * accuracy_gap <= 0.5
        guard[f"trained_{trained_in}"] = row
        print(f"trained in {trained_in}: {row}", flush=True)
    report["guard"] = guard
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
