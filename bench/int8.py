"""Benchmark: int8 (OpenVINO artifact) against bf16 and fp32 on the default model, in one run.

Run: python -m bench.int8 [--data ../shared/data/cifar10-car-truck] [--cache-dir DIR]
                          [--seconds 8] [--concurrency 1,16,64] [--smoke]

In one run, on this machine:
1. fits the default model (`training fit` defaults: hed weights, 96 px, block4_pool,
   flip TTA) with an empty feature cache (a cold fit, unless --cache-dir is given)
   and records how much of it the int8 export (calibration + accuracy check) took;
2. in-process images/s at batch 1 and 16 of the same version as bf16 and int8 (1
   and 2 inference streams), interleaved round by round so that the load of this
   shared machine falls on all of them alike; fp32 just before, in its own process;
3. accuracy of each on the validation split and top-1 agreement with fp32;
4. served img/s and latency (`python -m service`, bench/loadgen.py, one 640x480
   JPEG per request) at each concurrency for bf16 and int8, with the server's RSS;
5. writes bench/results/int8.json (or --out) and prints the ratios.
`--smoke` runs a tiny, fast version (32 px random-weight model, few requests).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.serving import measure, server
from bench.support.harness import ROOT, free_port
from bench.support.photos import jpeg_from_cifar

RESULTS = ROOT / "bench" / "results" / "int8.json"
DATA = ROOT.parent.parent / "shared" / "data" / "cifar10-car-truck"


def fit_default(data: Path, models_dir: Path, cache_dir: Path, smoke: bool) -> dict[str, Any]:
    from training.fit import fit

    overrides: dict[str, Any] = {"cache_dir": str(cache_dir)}
    if smoke:
        overrides |= {"image_size": 32, "base_weights": "none", "epochs": 2}
    result = fit(data, "car_truck", models_dir, progress=False, **overrides)
    record = result.metadata.int8.model_dump() if result.metadata.int8 else {}
    measured_anyway = None
    if record.get("status") != "ready":
        # Measure what int8 would give even where the guard refused it: quantized again
        # with the guard waived, into this benchmark's temporary copy only.
        measured_anyway = force_int8(result.path, data, result.metadata)
    return {
        "path": str(result.path),
        "settings": {
            k: result.metadata.training["hyperparameters"][k]  # type: ignore[index]
            for k in ("image_size", "base_weights", "base_layer", "flip_tta", "precision")
        },
        "seconds": result.seconds,
        "images_through_base": result.images_through_base,
        "int8_record": record,
        "int8_guard_waived_for_measurement": measured_anyway,
    }


def reuse_fitted(model: Path, data: Path, models_dir: Path) -> dict[str, Any]:
    """A version fitted earlier (by this benchmark's step 1) instead of fitting again: its
    recorded fit and int8 export times are reported as they were measured then."""
    import shutil

    from modelstore.metadata import read_metadata

    path = models_dir / "car_truck" / "1"
    shutil.copytree(model, path)
    meta = read_metadata(path)
    record = meta.int8.model_dump() if meta.int8 else {}
    hyper = (meta.training or {})["hyperparameters"]
    measured_anyway = None
    if record.get("status") != "ready":
        shutil.rmtree(path / "int8", ignore_errors=True)
        measured_anyway = force_int8(path, data, meta)
    return {
        "path": str(path),
        "reused_from": str(model),
        "settings": {
            k: hyper[k]
            for k in ("image_size", "base_weights", "base_layer", "flip_tta", "precision")
        },
        "seconds": {"total": (meta.training or {})["seconds"], "int8": record.get("seconds")},
        "images_through_base": (meta.training or {})["images_through_base"],
        "int8_record": record,
        "int8_guard_waived_for_measurement": measured_anyway,
    }


def force_int8(path: Path, data: Path, meta: Any) -> dict[str, Any]:
    from modelstore.metadata import write_metadata
    from training.quantize import export_int8

    train, _ = labelled(data, "train", meta.labels)
    valid, truth = labelled(data, "valid", meta.labels)
    record = export_int8(
        path, train, valid, truth, meta.image_size, min_agreement=0.0, max_accuracy_drop=1.0
    )
    write_metadata(path, meta.model_copy(update={"int8": record}))
    return record.model_dump()


def labelled(data: Path, split: str, labels: list[str]) -> tuple[list[Path], list[int]]:
    paths, truth = [], []
    for index, label in enumerate(labels):
        for p in sorted((data / split / label).iterdir()):
            paths.append(p)
            truth.append(index)
    return paths, truth


def load_variants(path: Path) -> dict[str, Any]:
    """The version loaded as bf16 (TensorFlow's rewriter) and int8 (1 and 2 streams), warmed.

    fp32 runs in its own process (`fp32_worker`): TensorFlow keeps the graph it first
    instantiated for a SavedModel's function, so a second load of the same version in
    this process would run in the first one's precision whatever is set in between.
    """
    from modelstore.loader import load_published
    from modelstore.runtime import Precision, Runtime, use_precision

    models: dict[str, Any] = {}
    model = load_published(path, Runtime("/CPU:0", use_precision("bf16")))
    for batch in (1, 16):
        model.predict(np.zeros((batch, model.image_size, model.image_size, 3), np.uint8))
    models["bf16"] = model
    int8 = Precision("int8", "int8", "benchmark", int8=True)
    for streams in (1, 2):
        model = load_published(path, Runtime("/CPU:0", int8), int8_streams=streams)
        assert model.precision == "int8", "the version has no usable int8 artifact"
        models[f"int8_{streams}stream"] = model
    return models


def in_process(models: dict[str, Any], seconds: float, rounds: int) -> dict[str, dict[int, float]]:
    """Median over `rounds` of images/s per model and batch size, models interleaved."""
    size = next(iter(models.values())).image_size
    rng = np.random.default_rng(0)
    samples: dict[str, dict[int, list[float]]] = {k: {1: [], 16: []} for k in models}
    for _ in range(rounds):
        for batch in (1, 16):
            images = rng.integers(0, 256, (batch, size, size, 3), np.uint8)
            for label, model in models.items():
                model.predict(images)
                done, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds / rounds:
                    model.predict(images)
                    done += batch
                samples[label][batch].append(done / (time.perf_counter() - start))
    return {
        label: {b: round(statistics.median(v), 2) for b, v in by_batch.items()}
        for label, by_batch in samples.items()
    }


def valid_photos(data: Path, labels: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    from imaging import load_image

    paths, truth = labelled(data, "valid", labels)
    return np.stack([load_image(p, size) for p in paths]), np.asarray(truth)


def probabilities(model: Any, images: np.ndarray) -> np.ndarray:
    return np.concatenate([model.predict(images[i : i + 16]) for i in range(0, len(images), 16)])


def fp32_worker(path: Path, data: Path, seconds: float, out: Path) -> None:
    """In a process of its own: fp32 images/s at batch 1 and 16, and its validation scores."""
    from modelstore.loader import load_published
    from modelstore.runtime import Runtime, use_precision

    model = load_published(path, Runtime("/CPU:0", use_precision("fp32")))
    speeds = in_process({"fp32": model}, seconds, 1)["fp32"]
    images, _ = valid_photos(data, model.labels, model.image_size)
    np.save(out.with_suffix(".npy"), probabilities(model, images))
    out.write_text(json.dumps(speeds))


def run_fp32(path: Path, data: Path, seconds: float, work: Path) -> tuple[dict[int, float], Any]:
    out = work / "fp32.json"
    cmd = [sys.executable, "-m", "bench.int8", "--fp32-worker", str(path), "--data", str(data)]
    subprocess.run([*cmd, "--seconds", str(seconds), "--out", str(out)], cwd=ROOT, check=True)
    speeds = {int(k): v for k, v in json.loads(out.read_text()).items()}
    return speeds, np.load(out.with_suffix(".npy"))


def accuracy(
    models: dict[str, Any], fp32: np.ndarray, images: np.ndarray, truth: np.ndarray
) -> dict[str, Any]:
    """Accuracy of each on the validation split; top-1 agreement and max diff against fp32."""
    probs = {"fp32": fp32} | {
        k: probabilities(m, images) for k, m in models.items() if k in ("bf16", "int8_1stream")
    }
    out: dict[str, Any] = {"photos": len(truth), "split": "valid"}
    for k, p in probs.items():
        out[k] = {
            "accuracy": round(float(np.mean(p.argmax(1) == truth)), 4),
            "top1_agreement_with_fp32": round(float(np.mean(p.argmax(1) == fp32.argmax(1))), 4),
            "max_abs_probability_diff": round(float(np.max(np.abs(p - fp32))), 4),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: empty (cold fit)")
    parser.add_argument(
        "--model", type=Path, default=None, help="a version fitted by an earlier run: no fit"
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="in-process time per cell")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--requests", type=int, default=0, help="default: max(32, 4 x c)")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--fp32-worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fp32_worker is not None:
        fp32_worker(args.fp32_worker, args.data, args.seconds, args.out)
        return
    if args.smoke:
        args.seconds, args.rounds, args.concurrency, args.requests = 0.5, 1, "1,4", 8
    load_at_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-int8-"))
    cache = args.cache_dir or work / "features"
    began = time.monotonic()
    fitted = (
        reuse_fitted(args.model, args.data, work / "models")
        if args.model
        else fit_default(args.data, work / "models", cache, args.smoke)
    )
    print(f"fit: {fitted['seconds']} int8: {fitted['int8_record'].get('status')}", flush=True)
    path = Path(fitted["path"])
    fp32_speeds, fp32_probs = run_fp32(path, args.data, args.seconds, work)
    models = load_variants(path)
    speeds = {"fp32": fp32_speeds} | in_process(models, args.seconds, args.rounds)
    print(f"in-process img/s: {speeds}", flush=True)
    first = next(iter(models.values()))
    images, truth = valid_photos(args.data, first.labels, first.image_size)
    scores = accuracy(models, fp32_probs, images, truth)
    print(f"accuracy: {scores}", flush=True)
    for model in models.values():
        model.release()

    image = work / "photo.jpg"
    image.write_bytes(jpeg_from_cifar(640, 480))
    levels = [int(c) for c in args.concurrency.split(",")]
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=str(ROOT),
        VGGSVC_MODELS_DIR=str(work / "models"),
        VGGSVC_DEFAULT_MODEL="car_truck",
    )
    served: dict[str, list[dict]] = {}
    for precision in ("bf16", "int8"):
        port = free_port()
        cmd = [sys.executable, "-m", "service", "--precision", precision]
        cmd += ["--host", "127.0.0.1", "--port", str(port)]
        print(f"served {precision}:", flush=True)
        with server(cmd, env, port, work / f"{precision}.log") as pid:
            served[precision] = measure(
                f"http://127.0.0.1:{port}/predict",
                pid,
                image,
                levels,
                lambda c: args.requests or max(32, 4 * c),
            )

    def ratio(a: float, b: float) -> float:
        return round(a / b, 2) if b else float("nan")

    by_level = {r["concurrency"]: r for r in served["int8"]}
    bf16_level = {r["concurrency"]: r for r in served["bf16"]}
    ceiling_int8 = max(speeds["int8_1stream"].values())
    summary = {
        "in_process_int8_vs_bf16": {
            b: ratio(speeds["int8_1stream"][b], speeds["bf16"][b]) for b in (1, 16)
        },
        "in_process_int8_vs_fp32": {
            b: ratio(speeds["int8_1stream"][b], speeds["fp32"][b]) for b in (1, 16)
        },
        "in_process_2streams_vs_1stream": {
            b: ratio(speeds["int8_2stream"][b], speeds["int8_1stream"][b]) for b in (1, 16)
        },
        "served_int8_vs_bf16_img_s": {
            c: ratio(by_level[c]["throughput_rps"], bf16_level[c]["throughput_rps"]) for c in levels
        },
        "served_int8_vs_int8_in_process_ceiling": {
            c: ratio(by_level[c]["throughput_rps"], ceiling_int8) for c in levels
        },
        "c1_p50_int8_vs_bf16": ratio(
            by_level[levels[0]]["p50_ms"], bf16_level[levels[0]]["p50_ms"]
        ),
        "server_rss_mb": {p: max(r["server_rss_mb"] for r in rows) for p, rows in served.items()},
        "int8_export_seconds": fitted["int8_record"].get("seconds"),
        "int8_export_share_of_cold_fit": ratio(
            fitted["int8_record"].get("seconds") or 0.0, fitted["seconds"]["total"]
        ),
    }
    report = {
        "machine": f"{platform.machine()} cores={os.cpu_count()}",
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "note": "shared machine, other jobs running: compare ratios within this run",
        "fit": fitted,
        "in_process_images_per_s": speeds,
        "accuracy": scores,
        "served": served,
        "summary": summary,
        "seconds": round(time.monotonic() - began, 1),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
