"""Head training streamed from the feature store: peak memory and speed against the number
of pictures.

    PYTHONPATH=. python -m bench.streaming [--work /tmp/streaming-bench]
        [--out bench/results/streaming.json] [--quick]

Synthetic features are written straight into a feature store on disk (the
store's own file layout: one float32 `.npy` per picture, no base pass), two
classes a little apart so the head has something to learn. For each size a
fresh process trains fit's default head (`FitConfig`: flatten, 256 units,
dropout 0.5, batch 32, Adam 1e-3) for one epoch with `train_head_on` on the
streamed split (`--feature-memory-mb 0`), validation (2 000 pictures) streamed
too, and reports:

- peak RSS (VmHWM) of the whole process (with the list of every picture's hash
  that fit also holds), of the training alone (VmHWM reset once the split's
  source is made), and before (Python, TensorFlow imported);
- pictures/s of the epoch's training pass, whole (first step's tracing included)
  and after its first 16-step call (the steady rate);
- seconds of the completeness check (one `stat` per file) and of the
  normalisation pass (one read of every feature).

Series: the default features' shape for the default `hed` settings (block4_pool
at 96 px, 6x6x512 = 73 856 bytes stored) at 10^4 and 10^5 pictures, and a
smaller real shape (block5_pool at 64 px, 2x2x512 = 8 320 bytes) at 10^4, 10^5
and 10^6: 10^6 pictures at the default shape would be 74 GB of disk, more than
this shared machine has free. Also the in-memory path at 10^4 (the split read
once into memory), for reference. Each store is deleted after its runs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from training.features.store import FeatureStore

KEY = {"weights": "synthetic", "layer": "bench"}
VALID = 2000
SHAPES = {"block4_pool-96px": (6, 6, 512), "block5_pool-64px": (2, 2, 512)}
RUNS = [  # (shape, pictures, memory_mb), in this order; each store grows as it goes
    ("block5_pool-64px", 10_000, 0),
    ("block5_pool-64px", 10_000, 1 << 20),
    ("block5_pool-64px", 100_000, 0),
    ("block5_pool-64px", 1_000_000, 0),
    ("block4_pool-96px", 10_000, 0),
    ("block4_pool-96px", 100_000, 0),
]
WRITERS = 4  # file writes wait on the disk, so threads overlap them


def sha_of(i: int) -> str:
    return hashlib.sha256(f"synthetic picture {i}".encode()).hexdigest()


def label_of(i: int) -> int:
    return (i * 7919) % 2


def write_store(root: Path, shape: tuple[int, ...], count: int, first: int = 0) -> None:
    """`count` pictures' features, written in the store's layout (as `FeatureStore.put`
    names and formats them; plain writes, not atomic renames: nothing reads meanwhile)."""
    store = FeatureStore(root, KEY, shape)
    rng = np.random.default_rng(0)
    # 64 random arrays per class, reused: drawing 10^6 fresh arrays would cost more
    # than the training measured. Class 1 is shifted so the head can learn something.
    pool = []
    for label in (0, 1):
        for _ in range(64):
            value = rng.normal(size=shape).astype(np.float32) + 0.5 * label
            buf = io.BytesIO()
            np.save(buf, value, allow_pickle=False)
            pool.append(buf.getvalue())
    for prefix in range(256):
        Path(store.location(f"{prefix:02x}")).parent.mkdir(parents=True, exist_ok=True)

    def write(i: int) -> None:
        with open(store.location(sha_of(i)), "wb") as fh:
            fh.write(pool[label_of(i) * 64 + i % 64])

    # In slices: Executor.map makes every future at once (a million futures: 1 GB).
    with ThreadPoolExecutor(WRITERS) as writers:
        for start in range(first, first + count, 10_000):
            list(writers.map(write, range(start, min(start + 10_000, first + count))))


def reset_peak_rss() -> None:
    """Linux: start the process's peak resident set size (VmHWM) afresh from now."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_since_reset() -> int:
    """VmHWM in KiB: the peak since `reset_peak_rss` (ru_maxrss never resets)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(root: Path, shape: tuple[int, ...], count: int, memory_mb: int) -> dict[str, Any]:
    """One run in this process (a fresh one per run): train one epoch, report."""
    import keras

    from training.features.stream import StoredFeatures, training_source
    from training.fit import FitConfig, train_head_on

    store = FeatureStore(root, KEY, shape)
    shas = [sha_of(i) for i in range(count)]
    labels = np.asarray([label_of(i) for i in range(count)], dtype=np.int64)
    valid_ids = range(count, count + VALID)
    rss_start = peak_rss_since_reset()  # VmHWM: this process's own (ru_maxrss inherits
    # the parent's high-water mark across fork and exec on Linux)
    started = time.monotonic()
    # paths: fit holds them (one per picture) for its records; the head never reads them.
    train = training_source(StoredFeatures(store, [], shas, False), labels, "none", memory_mb)
    del shas  # fit keeps its own list (metadata); the stream keeps 32-byte keys
    check = time.monotonic() - started
    valid = training_source(
        StoredFeatures(store, [], [sha_of(i) for i in valid_ids], False),
        [label_of(i) for i in valid_ids],
        "none",
        memory_mb,
    )
    times: dict[str, float] = {}

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            times["train_begin"] = time.monotonic()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            times["epoch_begin"] = time.monotonic()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            times.setdefault("first_call_end", time.monotonic())
            times.setdefault("first_call_steps", batch + 1)
            times["last_batch_end"] = time.monotonic()

    cfg = FitConfig(
        epochs=1, head="flatten", width=256, dropout=0.5, batch_size=32, label_smoothing=0.2
    )
    rss_setup = peak_rss_since_reset()  # with the list of every picture's hash
    reset_peak_rss()  # from here: what training itself holds at its peak
    _, history = train_head_on(cfg, train, valid, 2, callbacks=[Clock()])
    rss_training = peak_rss_since_reset()
    ended = time.monotonic()
    steady = count - times["first_call_steps"] * cfg.batch_size
    steady_s = times["last_batch_end"] - times["first_call_end"]
    epoch_s = times["last_batch_end"] - times["epoch_begin"]
    return {
        "shape": list(shape),
        "pictures": count,
        "mode": "in memory" if memory_mb else "streamed",
        "stored_bytes_per_picture": store.entry_size(),
        "rss_before_training_mib": round(rss_start / 1024, 1),
        "peak_rss_mib": round(max(rss_setup, rss_training) / 1024, 1),
        "peak_rss_training_mib": round(rss_training / 1024, 1),
        "check_seconds": round(check, 2),
        "normalisation_and_setup_seconds": round(times["epoch_begin"] - started - check, 2),
        "epoch_train_seconds": round(epoch_s, 2),
        "pictures_per_s_epoch": round(count / epoch_s, 1),
        "pictures_per_s_steady": round(steady / steady_s, 1),
        "validation_seconds": round(ended - times["last_batch_end"], 2),
        "val_accuracy": round(history["val_accuracy"][-1], 4),
    }


def run_one(root: Path, shape_name: str, count: int, memory_mb: int) -> dict[str, Any]:
    """`measure` in a fresh Python process: its peak RSS is this run's alone."""
    cmd = [
        sys.executable,
        "-m",
        "bench.streaming",
        "--one",
        json.dumps({"root": str(root), "shape": shape_name, "count": count, "mb": memory_mb}),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise RuntimeError(f"{shape_name} {count}: {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/streaming-bench")
    parser.add_argument("--out", default="bench/results/streaming.json")
    parser.add_argument("--quick", action="store_true", help="10^3 and 10^4 only (a smoke run)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="which series to run")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        spec = json.loads(args.one)
        shape = SHAPES[spec["shape"]]
        print(json.dumps(measure(Path(spec["root"]), shape, spec["count"], spec["mb"])))
        return
    runs = [(s, n // 10, mb) for s, n, mb in RUNS if n <= 100_000] if args.quick else RUNS
    runs = [run for run in runs if run[0] in args.shapes.split(",")]
    work = Path(args.work)
    results: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    written = dict.fromkeys(SHAPES, 0)
    for index, (shape_name, count, memory_mb) in enumerate(runs):
        root = work / shape_name
        if written[shape_name] < count + VALID:
            # The validation pictures of a smaller size become training pictures of a
            # larger one: the store grows by the difference.
            t = time.monotonic()
            write_store(
                root, SHAPES[shape_name], count + VALID - written[shape_name], written[shape_name]
            )
            written[shape_name] = count + VALID
            print(f"{shape_name}: {count} pictures stored in {time.monotonic() - t:.0f}s")
        results.append(run_one(root, shape_name, count, memory_mb))
        if all(s != shape_name for s, _, _ in runs[index + 1 :]):
            shutil.rmtree(root, ignore_errors=True)  # this shape is done: free the disk
        write_report(Path(args.out), results, load_before)  # after every run: partial is kept


def write_report(out: Path, results: list[dict[str, Any]], load_before: tuple[float, ...]) -> None:
    report = {
        "what": __doc__.split("\n\n")[1],
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1m_before_after": [round(load_before[0], 2), os.getloadavg()[0]],
        },
        "runs": results,
        "ratios": ratios(results),
    }
    out.write_text(json.dumps(report, indent=2) + "\n")


def ratios(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Largest vs smallest streamed size of each shape: the targets' two ratios."""
    out: dict[str, Any] = {}
    for shape in {tuple(r["shape"]) for r in results}:
        runs = sorted(
            (r for r in results if tuple(r["shape"]) == shape and r["mode"] == "streamed"),
            key=lambda r: r["pictures"],
        )
        small, large = runs[0], runs[-1]
        out["x".join(map(str, shape))] = {
            "pictures": [small["pictures"], large["pictures"]],
            "peak_rss_ratio": round(large["peak_rss_mib"] / small["peak_rss_mib"], 3),
            "pictures_per_s_epoch_ratio": round(
                large["pictures_per_s_epoch"] / small["pictures_per_s_epoch"], 3
            ),
            "peak_rss_training_ratio": round(
                large["peak_rss_training_mib"] / small["peak_rss_training_mib"], 3
            ),
            "pictures_per_s_steady_ratio": round(
                large["pictures_per_s_steady"] / small["pictures_per_s_steady"], 3
            ),
        }
    return out


if __name__ == "__main__":
    main()
