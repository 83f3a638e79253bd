"""The first hour's numbers: how fast bad arguments fail, and what a version costs on disk.

    python -m bench.first_hour --version models/car_truck/2 [--before models/car_truck/1] \
        [--cache ~/.cache/vgg-transfer/features]

- `errors`: the wall time of `python -m training fit` with each kind of mistake
  (median of 3 runs each, in a fresh interpreter), its exit code, and whether
  TensorFlow was imported (it must not be).
- `disk`: the bytes of each file of a published version (and of `--before`, a
  version published by an older release, for comparison), and of the feature
  cache per picture.

Writes bench/results/first_hour.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "first_hour.json"
PROBE = """
import sys
from training.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.exit(code if "tensorflow" not in sys.modules else 99)
"""


def _mistakes(work: Path) -> dict[str, list[str]]:
    data = work / "data"
    for split in ("train", "valid"):
        for label in ("car", "truck"):
            (data / split / label).mkdir(parents=True, exist_ok=True)
            (data / split / label / "a.png").write_bytes(b"x")
    (work / "file").write_text("x")
    (work / "empty").mkdir(exist_ok=True)
    ok = ["fit", "--data", str(data), "--name", "m", "--models-dir", str(work / "models")]
    return {
        "invalid --name": [*ok, "--name", "bad name"],
        "--models-dir is a file": [*ok, "--models-dir", str(work / "file")],
        "--base-layer typo": [*ok, "--base-layer", "block4_pol"],
        "--base-weights imagent": [*ok, "--base-weights", "imagent"],
        "data without classes": [*ok, "--data", str(work / "empty")],
        "--dropout 1.5": [*ok, "--dropout", "1.5"],
    }


def time_errors(repeats: int = 3) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in _mistakes(Path(tmp)).items():
            seconds, codes = [], set()
            for _ in range(repeats):
                began = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-c", PROBE, *argv], env=env, capture_output=True
                )
                seconds.append(time.perf_counter() - began)
                codes.add(done.returncode)
            out[name] = {
                "exit_codes": sorted(codes),  # 99 would mean TensorFlow was imported
                "median_s": round(statistics.median(seconds), 3),
                "max_s": round(max(seconds), 3),
            }
    return out


def version_sizes(folder: Path) -> dict[str, int]:
    sizes = {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}
    return {"total": sum(sizes.values()), **dict(sorted(sizes.items()))}


def cache_per_picture(cache: Path) -> dict[str, Any]:
    files = [p.stat().st_size for p in cache.rglob("*.npy")]
    flips = len(list(cache.rglob("*.flip.npy")))
    pictures = len(files) - flips
    return {
        "files": len(files),
        "pictures": pictures,
        "bytes_per_file": sorted(set(files)),
        "bytes_per_picture": round(sum(files) / pictures) if pictures else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--version", type=Path, required=True, help="a published version")
    parser.add_argument("--before", type=Path, help="the same model from an older release")
    parser.add_argument("--cache", type=Path, help="the feature cache its fit filled")
    args = parser.parse_args()
    meta = json.loads((args.version / "metadata.json").read_text())
    result: dict[str, Any] = {
        "machine": "2 shared CPU cores, loaded by other jobs",
        "errors": time_errors(),
        "disk": {
            "settings": {
                k: meta["training"]["hyperparameters"][k]
                for k in ("base_layer", "image_size", "head", "width", "flip_augment", "flip_tta")
            },
            "base_weights": meta["base_weights"]["kind"],
            "version": version_sizes(args.version),
        },
    }
    if args.before:
        result["disk"]["before"] = version_sizes(args.before)
    if args.cache:
        result["disk"]["feature_cache"] = cache_per_picture(args.cache)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
