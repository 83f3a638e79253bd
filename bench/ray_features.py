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
3. head training speed on the gathered 128 px features (pictures per second
   per epoch), which bounds how many pictures single-process training can take.
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

from training.data import load_dataset
from training.features import FeatureExtractor, LocalFeatureEngine
from training.fit import FitConfig, train_head
from training.model import build_base, truncate_base

LAYERS = ("block3_pool", "block4_pool", "block5_pool")
SIZES = (64, 128, 224)


def _extract(engine: Any, paths: list[Path], size: int, batch: int, weights: str) -> dict[str, Any]:
    base, info = build_base(weights, size)
    with tempfile.TemporaryDirectory() as store:
        extractor = FeatureExtractor(base, info, size, store, batch_size=batch, progress=False)
        started = time.monotonic()
        feats = engine.extract(extractor, paths, label="bench")
        seconds = time.monotonic() - started
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

    from training.ray_engine import RayFeatureEngine

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
    return {
        "nodes": nodes,
        "cpus_per_node": per_node,
        "cluster_start_s": round(cluster_start, 2),
        **result,
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


def head_speed(paths: list[Path], labels: list[int], size: int, weights: str) -> dict[str, Any]:
    """Seconds per epoch of the default head on the gathered block5 features."""
    base, info = build_base(weights, size)
    with tempfile.TemporaryDirectory() as store:
        extractor = FeatureExtractor(base, info, size, store, progress=False)
        x = extractor.extract(paths).values
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
    results["local"] = _extract(LocalFeatureEngine(), paths, size, batch, args.weights)
    print("local", results["local"], flush=True)
    results["ray_1_node"] = run_ray(paths, size, batch, args.weights, 1, cpus)
    print("ray 1 node", results["ray_1_node"], flush=True)
    results["ray_2_nodes"] = run_ray(paths, size, batch, args.weights, 2, cpus)
    print("ray 2 nodes", results["ray_2_nodes"], flush=True)
    local_rate = results["local"]["images_per_s"]
    for key in ("ray_1_node", "ray_2_nodes"):
        results[key]["vs_local"] = round(results[key]["images_per_s"] / local_rate, 3)
    results["feature_bytes"] = feature_bytes(paths[:8])
    results["head_training"] = head_speed(paths, labels, size, args.weights)
    print("head", results["head_training"], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
