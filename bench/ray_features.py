"""Feature extraction: the local engine vs Ray Data on 1 and 2 local nodes; feature sizes.

    PYTHONPATH=. python -m bench.ray_features [--data ../shared/data/cifar10-car-truck]
        [--image-size 128] [--limit 0] [--out bench/results/ray_features.json]

1. engines: the same pictures through the frozen base (hed weights, whole base)
   into an empty feature store, three ways, all end to end (for Ray: actor start,
   TensorFlow import and base build included; the cluster's own start is timed
   apart): the local engine in this process; Ray with one node holding every
   CPU; Ray with two nodes sharing them (`ray.cluster_utils.Cluster`). On one
   box no speed-up is possible: what this measures is Ray's overhead.
2. bytes per picture of the gathered features (in memory and as stored) for
   each cut layer at 64, 128 and 224 px, measured on real extractions.
3. decoding speed on one core (`imaging.load_image`), which sets how many CPUs a
   GPU node needs, and head training speed on the gathered 128 px features
   (pictures per second per epoch), which bounds single-process training.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from imaging import load_image
from training.data import load_dataset
from training.engine import LocalFeatureEngine
from training.features.extractor import FeatureExtractor
from training.fit import FitConfig, train_head
from training.model import build_base, truncate_base

LAYERS = ("block3_pool", "block4_pool", "block5_pool")
SIZES = (64, 128, 224)


def _extract(
    engine: Any,
    paths: list[Path],
    size: int,
    batch: int,
    weights: str,
    keep: list[Any] | None = None,
) -> dict[str, Any]:
    base, info = build_base(weights, size)
    with tempfile.TemporaryDirectory() as store:
        extractor = FeatureExtractor(base, info, size, store, batch_size=batch, progress=False)
        started = time.monotonic()
        feats = engine.extract(extractor, paths, label="bench")
        seconds = time.monotonic() - started
    if keep is not None:
        keep.append(feats)
    return {
        "images": len(feats.paths),
        "seconds": round(seconds, 2),
        "images_per_s": round(len(feats.paths) / seconds, 2),
        "through_base": extractor.images_through_base,
        **({"engine": engine.describe()} if hasattr(engine, "describe") else {}),
    }


def run_ray(
    paths: list[Path], size: int, batch: int, weights: str, nodes: int, cpus: int
) -> dict[str, Any]:
    """A fresh local cluster of `nodes` nodes sharing `cpus` CPUs, one base actor per node."""
    import ray
    from ray.cluster_utils import Cluster

    from training.cluster.engine import RayFeatureEngine

    started = time.monotonic()
    per_node = max(1, cpus // nodes)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": per_node})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=per_node)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    cluster_start = time.monotonic() - started
    try:
        engine = RayFeatureEngine(batch_size=batch, progress=False)
        result = _extract(engine, paths, size, batch, weights)
    finally:
        ray.shutdown()
        cluster.shutdown()
    first, rows = engine.seconds["first_results"], engine.seconds["first_results_rows"]
    steady = (len(paths) - rows) / (engine.seconds["total"] - first)
    return {
        "nodes": nodes,
        "cpus_per_node": per_node,
        "cluster_start_s": round(cluster_start, 2),
        **result,
        "first_results_s": round(first, 2),  # actors start: TensorFlow import, base build
        "images_per_s_after_first_results": round(steady, 2),
    }


def feature_bytes(paths: list[Path]) -> list[dict[str, Any]]:
    """Bytes per picture of real extracted features, per cut layer and input size."""
    rows = []
    for size in SIZES:
        full, info = build_base("none", size)
        for layer in LAYERS:
            base = truncate_base(full, layer)
            with tempfile.TemporaryDirectory() as store:
                extractor = FeatureExtractor(base, info, size, store, progress=False, layer=layer)
                feats = extractor.extract(paths)
                stored = [p.stat().st_size for p in Path(store).rglob("*.npy")]
            rows.append(
                {
                    "image_size": size,
                    "layer": layer,
                    "shape": list(feats.values.shape[1:]),
                    "bytes_in_memory": int(feats.values[0].nbytes),
                    "bytes_stored": int(np.mean(stored)),
                }
            )
    return rows


def decode_speed(paths: list[Path], size: int) -> dict[str, Any]:
    """Pictures per second that one core decodes with `imaging.load_image` (what feeds a GPU)."""
    started = time.monotonic()
    for path in paths:
        load_image(path, size)
    seconds = time.monotonic() - started
    return {"images": len(paths), "images_per_s_per_core": round(len(paths) / seconds, 1)}


def head_speed(x: np.ndarray, labels: list[int]) -> dict[str, Any]:
    """Seconds per epoch of the default head (FitConfig) on gathered features `x`."""
    y = np.asarray(labels)
    cfg = FitConfig(epochs=5, patience=100)
    started = time.monotonic()
    train_head(cfg, x, y, x[:64], y[:64], 2)
    per_epoch = (time.monotonic() - started) / cfg.epochs
    return {
        "images": len(x),
        "feature_shape": list(x.shape[1:]),
        "seconds_per_epoch": round(per_epoch, 2),
        "images_per_s": round(len(x) / per_epoch, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cifar10-car-truck"))
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--weights", default="hed")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N pictures")
    parser.add_argument("--out", type=Path, default=Path("bench/results/ray_features.json"))
    args = parser.parse_args()

    data = load_dataset(args.data)
    paths = data.train.paths + data.valid.paths
    labels = data.train.labels + data.valid.labels
    if args.limit:
        paths, labels = paths[: args.limit], labels[: args.limit]
    cpus = os.cpu_count() or 1
    size, batch = args.image_size, args.batch_size
    results: dict[str, Any] = {
        "machine": f"{platform.machine()} cores={cpus}",
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "data": str(args.data),
        "images": len(paths),
        "image_size": size,
        "batch_size": batch,
        "weights": args.weights,
        "gpu": "not measured: no GPU was lent to this task",
    }
    print(f"{len(paths)} pictures at {size} px", flush=True)
    # A-B-C-C-B-A: each engine runs twice, in mirrored order, so a load that drifts
    # during the run (other jobs on a shared box) weighs on every engine alike.
    kept: list[Any] = []
    runs: dict[str, list[dict[str, Any]]] = {"local": [], "ray_1_node": [], "ray_2_nodes": []}
    order = ["local", "ray_1_node", "ray_2_nodes"]
    for key in order + order[::-1]:
        if key == "local":
            run = _extract(LocalFeatureEngine(), paths, size, batch, args.weights, kept)
        else:
            run = run_ray(paths, size, batch, args.weights, 1 if key == "ray_1_node" else 2, cpus)
        run["load_average_1min"] = round(os.getloadavg()[0], 2)
        runs[key].append(run)
        print(key, run, flush=True)
    results["runs"] = runs
    rate = {k: float(np.mean([r["images_per_s"] for r in v])) for k, v in runs.items()}
    for key in ("ray_1_node", "ray_2_nodes"):
        steady = float(np.mean([r["images_per_s_after_first_results"] for r in runs[key]]))
        results[key] = {
            "images_per_s": round(rate[key], 2),
            "vs_local": round(rate[key] / rate["local"], 3),
            "images_per_s_after_first_results": round(steady, 2),
            "vs_local_after_first_results": round(steady / rate["local"], 3),
            "first_results_s": round(float(np.mean([r["first_results_s"] for r in runs[key]])), 2),
            "cluster_start_s": round(float(np.mean([r["cluster_start_s"] for r in runs[key]])), 2),
        }
    results["local"] = {"images_per_s": round(rate["local"], 2)}
    results["decode"] = decode_speed(paths, size)
    results["feature_bytes"] = feature_bytes(paths[:8])
    results["head_training"] = head_speed(kept[0].values, labels)
    print("head", results["head_training"], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
