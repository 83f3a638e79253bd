"""Where a served request's time goes: py-spy samples of the service under load, by stage.

Run (py-spy from PyPI; root or ptrace rights):
    PYTHONPATH=. python -m bench.serving_profile [--precision bf16] [--concurrency 16]
        [--seconds 30] [--out bench/results/serving_profile.json]

One service process (`python -m service`, a 128 px car_truck with random base
weights) gets closed-loop load from `bench.support.loadgen` (640x480 JPEGs) while
`py-spy record --format raw` samples its Python threads (idle threads left
out). Each sampled stack is charged to the stage of its innermost recognised
frame (waiting, model, decode, multipart, JSON, batcher, HTTP server/event
loop, other), and
the share of samples per stage is written with the process's CPU seconds per
image (from /proc) and the throughput of the same run.

TensorFlow's own compute threads are not Python threads: py-spy sees the
Python thread that waits for them, inside `model`. The CPU seconds per image
include everything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.serving import export_model, load, server
from bench.support.harness import ROOT, free_port
from bench.support.photos import jpeg_from_cifar

# A stack is charged to the innermost frame that matches a stage (first stage listed
# wins within that frame). Waits that py-spy still samples as active come first.
STAGES = [
    (
        "waiting (event loop select, condition, idle worker)",
        ("Selector.select", "Condition.wait", "futures/thread.py:8"),
    ),
    ("model (TensorFlow call)", ("tensorflow", "saved_model", "TFE_Py_Execute", "predictor.py:")),
    ("decode (Pillow)", ("imaging/", "PIL/")),
    ("multipart / form parsing", ("multipart", "python_multipart", "formparsers")),
    ("JSON encode/decode", ("orjson", "json_body", "json/")),
    ("batcher", ("batcher.py",)),
    (
        "HTTP server and event loop",
        ("uvicorn", "h11", "httptools", "asyncio", "starlette", "fastapi"),
    ),
]


def stage_of(stack: str) -> str:
    for frame in reversed(stack.split(";")):
        for name, markers in STAGES:
            if any(marker in frame for marker in markers):
                return name
    return "other"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/serving_profile.json")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    work = Path(tempfile.mkdtemp(prefix="serving-profile-"))
    try:
        models = work / "models"
        export_model(models, args.image_size)
        image = work / "photo.jpg"
        image.write_bytes(jpeg_from_cifar(640, 480))
        port = free_port()
        cmd = [sys.executable, "-m", "service", "--port", str(port), "--models-dir", str(models)]
        cmd += ["--default-model", "car_truck", "--precision", args.precision]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        url = f"http://127.0.0.1:{port}/predict"
        with server(cmd, env, port, work / "service.log") as pid:
            load(url, image, 2, 16)  # warm
            raw = work / "profile.txt"
            record = ["record", "--pid", str(pid), "--format", "raw", "--output", str(raw)]
            record += ["--duration", str(args.seconds), "--rate", "200", "--nonblocking"]
            spy_proc = subprocess.Popen(
                [spy, *record], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            time.sleep(1.0)  # py-spy attaches
            cpu_before, start = cpu_seconds(pid), time.monotonic()
            # Enough requests to outlast the recording at the expected rate.
            row = load(url, image, args.concurrency, args.concurrency * 2 * args.seconds)
            cpu = cpu_seconds(pid) - cpu_before
            wall = time.monotonic() - start
            spy_proc.wait(timeout=args.seconds + 60)
        samples: Counter[str] = Counter()
        functions: Counter[str] = Counter()
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            samples[stage_of(stack)] += int(count)
            functions[stack.split(";")[-1]] += int(count)
        total = sum(samples.values()) or 1
        images = row["requests"] - sum(row["errors"].values())
        if images == 0:
            raise RuntimeError(f"every request failed: {row['errors']}")
        result = {
            "what": __doc__.split("\n\n")[2].replace("\n", " ").strip(),
            "precision": args.precision,
            "concurrency": args.concurrency,
            "throughput_rps": row["throughput_rps"],
            "p50_ms": row["p50_ms"],
            "errors": row["errors"],
            "process_cpu_seconds_per_image": round(cpu / max(images, 1), 4),
            "process_cpu_cores_busy": round(cpu / wall, 2),
            "python_samples": total,
            "share_of_python_samples": {k: round(v / total, 3) for k, v in samples.most_common()},
            "top_leaf_frames": [
                {"frame": k, "share": round(v / total, 3)} for k, v in functions.most_common(15)
            ],
        }
        print(json.dumps(result, indent=2))
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
