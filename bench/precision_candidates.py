"""Benchmark: the ways to run the model in reduced precision, measured side by side.

Run: python -m bench.precision_candidates [--image-size 128] [--batches 1,8,16,32,64]
                                          [--seconds 3] [--smoke]

Issue 10 asked to choose how reduced precision runs by measurement. One run, on
this machine, in-process (no HTTP, no decoding), the same `car_truck` classifier
(VGG16 base with random weights, flatten -> 256 -> 2; weights do not change speed):

- `tf_fp32`: the exported SavedModel as the service loads it (today's fp32 path);
- `tf_amp_bf16`: the same SavedModel after TensorFlow's oneDNN auto mixed precision
  (grappler rewrites convolutions and matmuls to bf16): what `--precision bf16` does;
- `keras_bf16_policy`: the Keras model built under the `mixed_bfloat16` policy
  (what a bf16 export would contain: the SavedModel would no longer be fp32);
- `xla_fp32`, `xla_bf16_policy`: the Keras model in a `tf.function(jit_compile=True)`;
- `openvino_fp32`, `openvino_bf16`: the SavedModel converted by OpenVINO
  (`pip install openvino`; not a dependency) and compiled for the CPU with
  `INFERENCE_PRECISION_HINT` f32 / bf16.

Each candidate runs in its own process (the rewriter option and the Keras policy
are process-wide), reports images/s per batch size and its probabilities on the
same 64 pictures (real photos from `--photos` when given, else random pixels),
which are compared with `tf_fp32`'s: max absolute difference and top-1 agreement
(with random weights these only show that the candidate computes the same
function; accuracy on real photos is `bench/precision_accuracy.py`'s job).
Writes bench/results/precision_candidates.json (or --out). `--smoke`: 32 px, two
batch sizes, a fraction of a second each, to check the harness.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.support.harness import ROOT

RESULTS = ROOT / "bench" / "results" / "precision_candidates.json"
CANDIDATES = (
    "tf_fp32",
    "tf_amp_bf16",
    "keras_bf16_policy",
    "xla_fp32",
    "xla_bf16_policy",
    "openvino_fp32",
    "openvino_bf16",
)
NEEDS_BF16 = {"tf_amp_bf16", "keras_bf16_policy", "xla_bf16_policy", "openvino_bf16"}
PROBE_IMAGES = 64


def build_keras_classifier(image_size: int, seed: int = 0) -> tuple[Any, Any]:
    """The benchmark's classifier as a Keras model (under whatever policy is set), and
    the base weights' record."""
    from training.model import build_base, build_classifier, build_head

    base, weights = build_base("none", image_size, seed=seed)
    head = build_head(base.output_shape[1:], 2, kind="flatten", width=256, dropout=0.0)
    return build_classifier(base, head, image_size), weights


def prepare(work: Path, image_size: int, photos: Path | None) -> dict[str, Any]:
    """Weights file, exported SavedModel and probe pictures, shared by every candidate."""
    from modelstore.tf_quiet import import_tensorflow

    import_tensorflow(False)
    from training.export import publish_classifier

    model, weights = build_keras_classifier(image_size)
    model.save_weights(work / "classifier.weights.h5")
    draft = publish_classifier(
        model, work / "models", "car_truck", ["car", "truck"], image_size, weights.to_dict()
    )
    pictures = probe_pictures(image_size, photos)
    np.save(work / "probe.npy", pictures)
    (work / "savedmodel.txt").write_text(str(draft.final_path))
    return {"savedmodel": str(draft.final_path), "probe": "photos" if photos else "random"}


def probe_pictures(image_size: int, photos: Path | None) -> np.ndarray:
    if photos is not None:
        from imaging.decode import is_image_file, load_image

        files = sorted(p for p in photos.rglob("*") if p.is_file() and is_image_file(p))
        step = max(1, len(files) // PROBE_IMAGES)
        chosen = files[::step][:PROBE_IMAGES]
        return np.stack([load_image(p, image_size) for p in chosen])
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (PROBE_IMAGES, image_size, image_size, 3), np.uint8)


def candidate_function(name: str, work: Path, image_size: int) -> Callable[[np.ndarray], Any]:
    """uint8 `[n, s, s, 3]` -> probabilities, for one candidate (in this process only)."""
    from modelstore.tf_quiet import import_tensorflow

    import_tensorflow(False)
    import tensorflow as tf

    savedmodel = (work / "savedmodel.txt").read_text()
    if name.startswith("openvino"):
        import openvino as ov

        core = ov.Core()
        hint = "bf16" if name.endswith("bf16") else "f32"
        compiled = core.compile_model(
            ov.convert_model(savedmodel), "CPU", {"INFERENCE_PRECISION_HINT": hint}
        )
        output = compiled.output(0)
        return lambda x: compiled(x)[output]
    if name.startswith("tf_"):
        from modelstore.runtime import use_precision

        use_precision("bf16" if name == "tf_amp_bf16" else "fp32")  # before loading
        signature = tf.saved_model.load(savedmodel).signatures["serving_default"]
        return lambda x: signature(images=tf.constant(x))["probabilities"].numpy()
    import keras

    if name.endswith("bf16_policy"):
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model, _ = build_keras_classifier(image_size)
    model.load_weights(work / "classifier.weights.h5")
    call = tf.function(
        lambda x: tf.cast(model(x, training=False), tf.float32),
        jit_compile=name.startswith("xla"),
    )
    return lambda x: call(tf.constant(x)).numpy()


def run_candidate(name: str, work: Path, image_size: int, batches: list[int], seconds: float):
    """In this process: images/s per batch size, and the probe pictures' probabilities."""
    started = time.perf_counter()
    infer = candidate_function(name, work, image_size)
    probe = np.load(work / "probe.npy")
    probabilities = np.asarray(infer(probe), dtype=np.float32)
    first_call_s = time.perf_counter() - started  # load/convert/compile and the first call
    rng = np.random.default_rng(1)
    speed = {}
    for batch in batches:
        pictures = rng.integers(0, 256, (batch, image_size, image_size, 3), np.uint8)
        infer(pictures)  # trace/compile this shape outside the timing
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or done < 2 * batch:
            infer(pictures)
            done += batch
        speed[batch] = round(done / (time.perf_counter() - start), 2)
    np.save(work / f"{name}.npy", probabilities)
    return {"images_per_s": speed, "setup_and_first_call_s": round(first_call_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batches", default="1,8,16,32,64")
    parser.add_argument("--seconds", type=float, default=3.0, help="per batch size")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--photos", type=Path, default=None, help="a folder of real photos")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child: run one candidate
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.image_size, args.batches, args.seconds = 32, "1,4", 0.2
    batches = [int(b) for b in args.batches.split(",")]
    if args.one:
        result = run_candidate(args.one, args.work, args.image_size, batches, args.seconds)
        print(json.dumps(result))
        return

    from modelstore.runtime import cpu_flags

    has_bf16 = bool({"amx_bf16", "avx512_bf16"} & cpu_flags())
    work = Path(tempfile.mkdtemp(prefix="bench-precision-"))
    setup = prepare(work, args.image_size, args.photos)
    names = [n for n in args.candidates.split(",") if n]
    if "tf_fp32" not in names:
        names.insert(0, "tf_fp32")  # the reference for every comparison
    results: dict[str, Any] = {}
    for name in names:
        if name in NEEDS_BF16 and not has_bf16:
            results[name] = {"skipped": "this CPU has no bf16 units (amx_bf16/avx512_bf16)"}
        elif name.startswith("openvino") and not _installed("openvino"):
            results[name] = {"skipped": "openvino is not installed (pip install openvino)"}
        else:
            results[name] = _child(name, work, args)
        print(name, json.dumps(results[name]), flush=True)
    if "images_per_s" not in results["tf_fp32"]:
        raise SystemExit(f"the reference tf_fp32 failed: {results['tf_fp32']}")
    reference = np.load(work / "tf_fp32.npy")
    for name, result in results.items():
        if "images_per_s" in result:
            result["vs_tf_fp32"] = _agreement(reference, np.load(work / f"{name}.npy"))
            result["best_images_per_s"] = max(result["images_per_s"].values())
    best_fp32 = results["tf_fp32"]["best_images_per_s"]
    report = {
        "what": "in-process images/s by batch size of one classifier run seven ways; "
        "probabilities on the same pictures compared with tf_fp32",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), bf16 units: {has_bf16}",
        "image_size": args.image_size,
        "probe": setup["probe"],
        "results": results,
        "best_over_tf_fp32": {
            name: round(r["best_images_per_s"] / best_fp32, 2)
            for name, r in results.items()
            if "best_images_per_s" in r
        },
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["best_over_tf_fp32"], indent=2))
    print(f"wrote {args.out}")


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _child(name: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench.precision_candidates",
        "--one",
        name,
        "--work",
        str(work),
        "--image-size",
        str(args.image_size),
        "--batches",
        args.batches,
        "--seconds",
        str(args.seconds),
    ]
    if args.smoke:
        command.append("--smoke")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        return {"failed": done.stderr.strip().splitlines()[-1:] or ["no output"]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _agreement(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    return {
        "max_abs_probability_diff": round(float(np.max(np.abs(reference - other))), 5),
        "top1_agreement": round(
            float(np.mean(reference.argmax(axis=1) == other.argmax(axis=1))), 4
        ),
    }


if __name__ == "__main__":
    main()
