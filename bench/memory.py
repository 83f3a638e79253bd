"""Benchmark: service memory after warm-up, and its growth over many requests.

Run: python -m bench.memory [--image-size 128] [--soak-requests 5000] [--soak-image-size 128]

1. RSS of `python -m service` after warm-up with `car_truck` at --image-size.
2. The same with `vgg16_imagenet` (224 px, 1000 classes) loaded as well.
3. Soak: --soak-requests requests (concurrency 8, one 640x480 JPEG each) against a
   service holding a --soak-image-size model, RSS sampled every 10 %; growth is
   measured from the sample after the first 10 % (allocator pools settle there).
   At 128 px, 5,000 requests take about 5 minutes on 2 CPU cores; `--soak-image-size 32`
   exercises the same request path (HTTP, decoding, batching) in about one.
Writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.serving import export_model, load, server
from bench.support.harness import ROOT, free_port, rss_mb
from bench.support.photos import jpeg_from_cifar
from training.imagenet import export_imagenet

RESULTS = ROOT / "bench" / "results" / "memory.json"


def service_cmd(port: int) -> list[str]:
    return [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--soak-requests", type=int, default=5000)
    parser.add_argument("--soak-image-size", type=int, default=128)
    parser.add_argument("--skip-imagenet", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    image = work / "photo.jpg"
    image.write_bytes(jpeg_from_cifar(640, 480))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    report: dict[str, object] = {"machine": f"cores={os.cpu_count()}"}

    models = work / "models"
    export_model(models, args.image_size)
    port = free_port()
    with server(
        service_cmd(port), dict(env, VGGSVC_MODELS_DIR=str(models)), port, work / "a.log"
    ) as pid:
        load(f"http://127.0.0.1:{port}/predict", image, 4, 16)
        report[f"rss_mb_car_truck_{args.image_size}px_after_warmup"] = round(rss_mb(pid), 1)
    print(report, flush=True)

    if not args.skip_imagenet:
        export_imagenet(models, weights="none")  # the real exporter; weights do not change memory
        port = free_port()
        with server(
            service_cmd(port), dict(env, VGGSVC_MODELS_DIR=str(models)), port, work / "b.log"
        ) as pid:
            load(f"http://127.0.0.1:{port}/predict", image, 4, 16)
            report["rss_mb_car_truck_plus_vgg16_imagenet_after_warmup"] = round(rss_mb(pid), 1)
        print(report, flush=True)

    soak_models = work / "soak-models"
    export_model(soak_models, args.soak_image_size)
    port = free_port()
    samples = []
    step = max(1, args.soak_requests // 10)
    url = f"http://127.0.0.1:{port}/predict"
    started = time.perf_counter()
    errors: dict[str, int] = {}
    with server(
        service_cmd(port), dict(env, VGGSVC_MODELS_DIR=str(soak_models)), port, work / "c.log"
    ) as pid:
        samples.append({"requests": 0, "rss_mb": round(rss_mb(pid), 1)})
        for done in range(step, args.soak_requests + 1, step):
            row = load(url, image, 8, step)
            for status, count in row["errors"].items():
                errors[status] = errors.get(status, 0) + count
            samples.append({"requests": done, "rss_mb": round(rss_mb(pid), 1)})
            print(samples[-1], flush=True)
    settled, final = samples[1]["rss_mb"], samples[-1]["rss_mb"]
    report["soak"] = {
        "image_size": args.soak_image_size,
        "requests": args.soak_requests,
        "errors": errors,
        "seconds": round(time.perf_counter() - started, 1),
        "samples": samples,
        "rss_growth_after_first_10pct": round((final - settled) / settled, 4),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "soak"}, indent=2))
    print(f"soak growth: {report['soak']['rss_growth_after_first_10pct']:.2%}")  # type: ignore[index]
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
