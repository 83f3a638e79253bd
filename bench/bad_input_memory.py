"""Benchmark: memory of a live service after the bad-input corpus and the largest legal images.

Run: python -m bench.bad_input_memory [--label after] [--image-size 32] [--passes 2]

1. Exports a `car_truck` model (random base weights: weights do not change memory)
   and starts `python -m service` with the default limits (40,000,000 pixels,
   20 MB bodies, two decode threads).
2. Warms it up with normal requests and takes the baseline RSS.
3. Sends every image of `bench/support/bad_inputs.py` (raw, multipart and TF Serving
   `{"b64": ...}`), then `legal_maximum_cases()` (a ~40-megapixel image per costly
   decode path: 1-bit, greyscale, RGB, RGBA, palette and 16-bit PNG, GIF, 1-bit BMP
   and TIFF, JPEG, WebP), then every JSON case to its routes, recording RSS after each.
4. Repeats that `--passes` times: growth that keeps rising per pass is a leak,
   growth that stops after the first is the allocator keeping its peak.
Writes the run under `runs[--label]` of bench/results/bad_input_memory.json (other
labels in the file are kept, so a before/after pair sits side by side).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.serving import ROOT, export_model, free_port, rss_mb, server
from bench.support.photos import jpeg_from_cifar

RESULTS = ROOT / "bench" / "results" / "bad_input_memory.json"


def requests_for(name: str, body: Any, content_type: str, kind: str, routes: tuple[str, ...]):
    """(label, method kwargs) for every way the case reaches the service."""
    if kind == "image":
        yield "raw", {"url": "/predict", "content": body, "headers": {"Content-Type": content_type}}
        yield "multipart", {"url": "/predict", "files": [("file", (name, body, content_type))]}
        b64 = json.dumps({"instances": [{"b64": base64.b64encode(body).decode()}]}).encode()
        yield "b64", {"url": "/v1/models/car_truck:predict", "content": b64}
        return
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if "decode_predictions_json" in routes:
        yield "json", {"url": "/decode_predictions", "content": raw, "headers": headers}
    if "tfserving_json" in routes:
        yield "json", {"url": "/v1/models/car_truck:predict", "content": raw, "headers": headers}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--label", default="current", help="the key this run is stored under")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))  # the corpus lives with the tests
    from bench.support.bad_inputs import cases, legal_maximum_cases

    work = Path(tempfile.mkdtemp(prefix="bench-bad-input-memory-"))
    export_model(work / "models", args.image_size)
    began = time.perf_counter()
    entries = [(c.name, c.payload(2), c.content_type, c.kind, c.routes) for c in cases()]
    # JSON last: memory a later image decode gives back must not hide what JSON keeps.
    corpus = [entry for entry in entries if entry[3] == "image"]
    for name, build in legal_maximum_cases():
        corpus.append((name, build(), "application/octet-stream", "image", ()))
    last_image = corpus[-1][0]
    corpus += [entry for entry in entries if entry[3] == "json"]
    print(f"{len(corpus)} inputs built in {time.perf_counter() - began:.0f} s", flush=True)
    normal = jpeg_from_cifar(640, 480)

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    env.update(VGGSVC_MODELS_DIR=str(work / "models"), VGGSVC_LOG_LEVEL="warning")
    port = free_port()
    statuses: Counter[str] = Counter()
    per_case: dict[str, float] = {}
    passes = []
    after_images = float("nan")
    with (
        server(
            [sys.executable, "-m", "service", "--port", str(port)], env, port, work / "s.log"
        ) as pid,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client,
    ):
        for _ in range(20):
            assert client.post("/predict", content=normal).status_code == 200
        baseline = rss_mb(pid)
        print(f"baseline RSS after warm-up: {baseline:.1f} MB", flush=True)
        for number in range(1, args.passes + 1):
            for name, body, content_type, kind, routes in corpus:
                before = rss_mb(pid)
                for how, request in requests_for(name, body, content_type, kind, routes):
                    try:
                        status = str(client.post(**request).status_code)
                    except httpx.TransportError:  # the server dropped the connection
                        status = "connection lost"
                    statuses[f"{how} {status}"] += 1
                if number == 1:
                    per_case[name] = round(rss_mb(pid) - before, 1)
                if number == 1 and name == last_image:
                    after_images = round(rss_mb(pid) - baseline, 1)
            # A normal request after the corpus must still be answered.
            assert client.post("/predict", content=normal).status_code == 200
            passes.append(round(rss_mb(pid) - baseline, 1))
            print(f"pass {number}: RSS growth {passes[-1]} MB", flush=True)
        final = rss_mb(pid)
    heaviest = dict(sorted(per_case.items(), key=lambda kv: -kv[1])[:8])
    run = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"cores={os.cpu_count()}",
        "inputs": len(corpus),
        "requests_per_pass": sum(statuses.values()) // args.passes,
        "statuses": dict(sorted(statuses.items())),
        "baseline_rss_mb": round(baseline, 1),
        "final_rss_mb": round(final, 1),
        "rss_growth_mb_after_each_pass": passes,
        "rss_growth_mb": passes[0],
        "rss_growth_mb_after_the_images_first_pass": after_images,
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        "largest_steps_first_pass_mb": heaviest,
    }
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report.setdefault("runs", {})[args.label] = run
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(run, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
