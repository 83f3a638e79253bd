"""Benchmark: served throughput and latency per precision vs the in-process ceiling and a naive app.

Run: python -m bench.serving [--image-size 128] [--concurrency 1,16,64]
                             [--precisions fp32,bf16] [--smoke] [--server-flag=--max-batch-size=32 ...]

In one run, on this machine:
1. exports a `car_truck` model at `--image-size` (random base weights: weights do
   not change speed) into a temporary model repository;
2. ceiling: the same SavedModel called in-process at batch sizes 1..64 (no HTTP,
   no decoding) in each precision, best images/s;
3. our service (`python -m service --precision P`, once per precision) and the
   naive tutorial app (`bench/support/naive_app.py`, fp32) each get the same closed-loop
   load from a separate process (`bench/support/loadgen.py`, raw keep-alive sockets):
   one 640x480 JPEG per request at each concurrency;
4. prints a table and writes JSON to bench/results/serving.json (or --out).
`--smoke` runs a tiny, fast version (32 px, few requests) to check the harness.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench.support.harness import ROOT, export_tiny, free_port, rss_mb, wait_ready
from bench.support.photos import jpeg_from_cifar

RESULTS = ROOT / "bench" / "results" / "serving.json"


def export_model(models_dir: Path, image_size: int) -> Path:
    """The benchmark's car_truck: random base weights (weights do not change speed)."""
    return export_tiny(models_dir, "car_truck", size=image_size, width=256, head="flatten")


def ceiling(model_path: Path, image_size: int, batch_sizes: list[int], seconds: float) -> dict:
    """Images/s of the bare SavedModel, per batch size, in this process."""
    import tensorflow as tf

    infer = tf.saved_model.load(str(model_path)).signatures["serving_default"]
    results = {}
    for batch in batch_sizes:
        images = tf.constant(
            np.random.default_rng(0).integers(0, 256, (batch, image_size, image_size, 3), np.uint8)
        )
        infer(images=images)  # trace + warm
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or done < 2 * batch:
            infer(images=images)["probabilities"].numpy()
            done += batch
        results[batch] = round(done / (time.perf_counter() - start), 2)
    return results


@contextlib.contextmanager
def server(cmd: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[int]:
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            try:
                wait_ready(f"http://127.0.0.1:{port}", proc, timeout_s=300)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}; see {log}") from exc
            yield proc.pid
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def load(url: str, image: Path, concurrency: int, requests: int) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.support.loadgen",
            "--url",
            url,
            "--image",
            str(image),
            "--concurrency",
            str(concurrency),
            "--requests",
            str(requests),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure(url: str, pid: int, image: Path, levels: list[int], requests_for) -> list[dict]:
    load(url, image, 2, 8)  # warm the connection path and any lazy initialisation
    rows = []
    for concurrency in levels:
        row = load(url, image, concurrency, requests_for(concurrency))
        row["server_rss_mb"] = round(rss_mb(pid), 1)
        rows.append(row)
        print(
            f"  c={concurrency:3d} {row['throughput_rps']:8.2f} img/s  p50 {row['p50_ms']:8.1f} ms"
            f"  p99 {row['p99_ms']:8.1f} ms  errors {row['errors']}  rss {row['server_rss_mb']} MB",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument(
        "--requests",
        type=int,
        default=0,
        help="requests per level (default: max(48, 8 x concurrency))",
    )
    parser.add_argument("--precisions", default="fp32,bf16", help="served and ceiling precisions")
    parser.add_argument("--ceiling-batches", default="1,2,4,8,16,32,64")
    parser.add_argument("--ceiling-seconds", type=float, default=6.0)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument(
        "--server-flag",
        action="append",
        default=[],
        help="extra flag for python -m service, e.g. --server-flag=--max-batch-size=32",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=FLAGS",
        help="one more run of our service in the same benchmark, e.g. "
        "--variant 'bf16_h11_asyncio=--precision bf16 --http h11 --loop asyncio' (an A/B)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny and fast: checks the harness")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--device-label", default="", help="e.g. the GPU name, recorded as is")
    args = parser.parse_args()
    if args.smoke:
        args.image_size, args.concurrency, args.requests = 32, "1,4", 8
        args.ceiling_batches, args.ceiling_seconds = "1,8", 0.5
    levels = [int(c) for c in args.concurrency.split(",")]
    precisions = [p for p in args.precisions.split(",") if p]

    def requests_for(concurrency: int) -> int:
        return args.requests or max(48, 8 * concurrency)

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    model_path = export_model(work / "models", args.image_size)
    image = work / "photo.jpg"
    image.write_bytes(jpeg_from_cifar(640, 480))
    print(f"model {model_path}, image {image.stat().st_size} bytes", flush=True)

    from modelstore.runtime import (
        PrecisionUnavailableError,
        cpu_flags,
        gpu_compute_capability,
        resolve_precision,
        use_precision,
    )

    skipped: dict[str, str] = {}
    for precision in list(precisions):
        try:
            resolve_precision(precision, gpu_compute_capability(), cpu_flags())
        except PrecisionUnavailableError as exc:
            precisions.remove(precision)
            skipped[precision] = str(exc)
            print(f"skipping {precision}: {exc}", flush=True)
    batches = [int(b) for b in args.ceiling_batches.split(",")]
    ceilings: dict[str, dict[int, float]] = {}
    for precision in precisions:
        use_precision(precision)  # process-wide; ceiling() loads the model afresh after it
        ceilings[precision] = ceiling(model_path, args.image_size, batches, args.ceiling_seconds)
        print(f"ceiling {precision} (images/s by batch): {ceilings[precision]}", flush=True)
    use_precision("fp32")

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))

    implementations: dict[str, str] = {}

    def bench_server(label: str, cmd: list[str], server_env: dict[str, str]) -> list[dict]:
        """Start one server on a free port, load it at every level, stop it."""
        port = free_port()
        print(f"{label}:", flush=True)
        log = work / f"{label}.log"
        with server(
            [*cmd, "--host", "127.0.0.1", "--port", str(port)], server_env, port, log
        ) as pid:
            rows = measure(f"http://127.0.0.1:{port}/predict", pid, image, levels, requests_for)
        # Our service logs what uvicorn really runs ("http: h11, event loop: asyncio").
        found = re.search(r"http: (\w+), event loop: (\w+)", log.read_text(errors="replace"))
        if found:
            implementations[label] = f"http {found[1]}, loop {found[2]}"
        return rows

    results: dict[str, list[dict]] = {}
    ours_env = dict(env, VGGSVC_MODELS_DIR=str(work / "models"), VGGSVC_DEFAULT_MODEL="car_truck")
    for precision in precisions:
        cmd = [sys.executable, "-m", "service", "--precision", precision, *args.server_flag]
        results[f"ours_{precision}"] = bench_server(f"ours_{precision}", cmd, ours_env)
    for variant in args.variant:
        label, _, flags = variant.partition("=")
        cmd = [sys.executable, "-m", "service", *flags.split(), *args.server_flag]
        results[f"ours_{label}"] = bench_server(f"ours_{label}", cmd, ours_env)
    if not args.skip_naive:
        results["naive"] = bench_server(
            "naive",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.support.naive_app:app",
                "--log-level",
                "warning",
            ],
            dict(env, NAIVE_MODEL=str(model_path)),
        )

    summary = summarise(results, ceilings)
    report = {
        "machine": f"{platform.machine()} cores={os.cpu_count()} {args.device_label}".strip(),
        "load_average_at_start": os.getloadavg(),
        "image_size": args.image_size,
        "request_image": "640x480 JPEG (a CIFAR car photo upscaled, or generated)",
        "server_flags": args.server_flag,
        "variants": args.variant,
        "server_implementations": implementations,
        "ceiling_images_per_s_by_batch": ceilings,
        "skipped_precisions": skipped,
        "results": results,
        "summary": summary,
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


def summarise(results: dict[str, list[dict]], ceilings: dict[str, dict[int, float]]) -> dict:
    """The issue's targets as ratios measured in this one run."""
    by = {label: {row["concurrency"]: row for row in rows} for label, rows in results.items()}
    summary: dict[str, object] = {}
    for precision, ceiling_by_batch in ceilings.items():
        best = max(ceiling_by_batch.values())
        summary[f"ceiling_best_{precision}"] = best
        ours = by.get(f"ours_{precision}", {})
        for c, row in sorted(ours.items()):
            summary[f"ours_{precision}_c{c}_over_ceiling"] = round(row["throughput_rps"] / best, 3)
    fp32, bf16, naive = by.get("ours_fp32", {}), by.get("ours_bf16", {}), by.get("naive", {})
    for c in sorted(set(fp32) & set(bf16)):
        summary[f"bf16_over_fp32_c{c}"] = round(
            bf16[c]["throughput_rps"] / fp32[c]["throughput_rps"], 2
        )
        summary[f"bf16_p50_over_fp32_p50_c{c}"] = round(bf16[c]["p50_ms"] / fp32[c]["p50_ms"], 2)
    for label in ("ours_fp32", "ours_bf16"):
        for c in sorted(set(by.get(label, {})) & set(naive)):
            summary[f"{label}_over_naive_c{c}"] = round(
                by[label][c]["throughput_rps"] / naive[c]["throughput_rps"], 2
            )
    return summary


if __name__ == "__main__":
    main()
