"""Benchmark: many classifiers on one frozen base (shared-base serving), in one run.

Run: python -m bench.many_heads [--image-size 96] [--seconds 12] [--rounds 2] [--out FILE]

Models: VGG16 with random weights cut at block4_pool, a flatten head of width 256
and mirror-image averaging: the shape `training fit` gives with the offline hed
weights (random weights cost the same time and memory). Two heads are exported
and copied to 8 model names (m0..m7), all on one base.

1. RSS of `python -m service` with 1 model vs 8 models (after the same warm-up
   traffic), against the target: 8 models <= 1 model + 8 x head size + 100 MB;
   and, for comparison, 8 models with `VGGSVC_SHARE_BASE=false` (each whole).
2. Throughput at concurrency 16: the same closed-loop traffic spread evenly over
   the 8 models vs all of it to m0, interleaved over `--rounds` rounds
   (target >= 0.9x); and both traffics on the whole-model service (8 models, each
   loaded whole), for the saving and for single-model speed with sharing on vs off.
3. Latency of one request (one picture) to 4 models (`models=m0,m1,m2,m3`) vs to
   m0 alone, sequential and interleaved (target <= 1.3x).
The machine may be shared: compare the ratios, measured within one run.
Writes bench/results/many_heads.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.support.harness import ROOT, export_tiny, rss_mb, running_service
from bench.support.loadgen import run as load_run
from bench.support.photos import jpeg_from_cifar

RESULTS = ROOT / "bench" / "results" / "many_heads.json"
MODELS = [f"m{i}" for i in range(8)]
BUCKETS = "1,2,4,8,16"  # fewer warm-up shapes: 8 whole models warm up in minutes otherwise


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def make_store(work: Path, size: int) -> tuple[Path, Path, int]:
    """(1-model folder, 8-model folder, bytes of one head's weights)."""
    source = work / "source"
    heads = [
        export_tiny(
            source,
            f"h{seed}",
            ["car", "truck"],
            size,
            seed=0,
            head_seed=seed,
            head="flatten",
            width=256,
            base_layer="block4_pool",
            flip_tta=True,
        )
        for seed in (1, 2)
    ]
    one, eight = work / "one", work / "eight"
    shutil.copytree(heads[0], one / "m0" / "1")
    for i, name in enumerate(MODELS):
        shutil.copytree(heads[i % 2], eight / name / "1")
    return one, eight, folder_bytes(heads[0] / "head" / "variables")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def traffic(url: str, pid: int, image: bytes, names: list[str], seconds: float) -> dict[str, Any]:
    """16 keep-alive clients, 2 per entry of `names` (8 entries); total requests/s, and
    requests per CPU-second of the service: on a loaded shared machine a process with
    more busy threads gets a larger share of the cores, which the CPU time sees through."""

    async def together() -> list[dict[str, Any]]:
        runs = [load_run(f"{url}/predict?model={n}", image, 2, 10**6, seconds) for n in names]
        return list(await asyncio.gather(*runs))

    cpu_before = cpu_seconds(pid)
    parts = asyncio.run(together())
    cpu = cpu_seconds(pid) - cpu_before
    ok = sum(p["ok"] for p in parts)
    return {
        "throughput_rps": round(sum(p["throughput_rps"] for p in parts), 2),
        "service_cpu_seconds": round(cpu, 1),
        "requests_per_cpu_second": round(ok / cpu, 3) if cpu else None,
        "ok": sum(p["ok"] for p in parts),
        "errors": sum(sum(p["errors"].values()) for p in parts),
        "p50_ms_median": statistics.median(p["p50_ms"] for p in parts),
    }


def warm(url: str, image: bytes, names: list[str]) -> None:
    with httpx.Client(timeout=120) as client:
        for name in names:
            for _ in range(3):
                client.post(f"{url}/predict?model={name}", content=image).raise_for_status()


def latencies(url: str, image: bytes, repeats: int) -> dict[str, Any]:
    """Sequential single-picture requests, 1 model and 4 models interleaved."""
    queries = {"one": "model=m0", "four": "models=m0,m1,m2,m3"}
    times: dict[str, list[float]] = {k: [] for k in queries}
    with httpx.Client(timeout=120) as client:
        for _ in range(repeats):
            for key, query in queries.items():
                began = time.perf_counter()
                client.post(f"{url}/predict?{query}", content=image).raise_for_status()
                times[key].append(time.perf_counter() - began)
    medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
    return {
        "repeats": repeats,
        "median_ms_1_model": round(medians["one"], 1),
        "median_ms_4_models": round(medians["four"], 1),
        "ratio_4_to_1": round(medians["four"] / medians["one"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--seconds", type=float, default=12.0, help="per throughput run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-repeats", type=int, default=40)
    parser.add_argument("--skip-whole", action="store_true", help="no whole-model comparison")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON report goes")
    args = parser.parse_args()

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-many-heads-"))
    image = jpeg_from_cifar(640, 480)
    one, eight, head_bytes = make_store(work, args.image_size)
    env = {
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "VGGSVC_BATCH_SIZES": BUCKETS,
        "VGGSVC_DEFAULT_MODEL": "m0",
    }
    report: dict[str, Any] = {
        "machine": f"cores={os.cpu_count()}, shared with other work (ratios within one run)",
        "model": f"{args.image_size} px, block4_pool, flatten head width 256, mirror averaging",
        "head_mb": round(head_bytes / 2**20, 2),
    }

    with running_service(one, log=work / "one.log", env=env) as (url, process):
        warm(url, image, ["m0"])
        rss_one = rss_mb(process.pid)
        report["precision"] = httpx.get(f"{url}/models").json()["models"][0]["precision"]

    with running_service(eight, log=work / "eight.log", env=env) as (url, process):
        warm(url, image, MODELS)
        rss_eight = rss_mb(process.pid)
        listing = httpx.get(f"{url}/models").json()
        report["served"] = sorted({m["served"] for m in listing["models"]})
        report["shared_bases"] = len(listing["shared_bases"])
        rounds = []
        for _ in range(args.rounds):  # interleaved: both see the same machine load
            spread = traffic(url, process.pid, image, MODELS, args.seconds)
            single = traffic(url, process.pid, image, ["m0"] * 8, args.seconds)
            rounds.append({"spread_over_8": spread, "all_to_1": single})
        report["latency"] = latencies(url, image, args.latency_repeats)

    limit = rss_one + 8 * head_bytes / 2**20 + 100
    report["memory"] = {
        "rss_mb_1_model": round(rss_one, 1),
        "rss_mb_8_models_shared": round(rss_eight, 1),
        "target_mb": round(limit, 1),
        "met": rss_eight <= limit,
    }
    spread_rps = sum(r["spread_over_8"]["throughput_rps"] for r in rounds)
    single_rps = sum(r["all_to_1"]["throughput_rps"] for r in rounds)
    per_cpu = [
        r["spread_over_8"]["requests_per_cpu_second"] / r["all_to_1"]["requests_per_cpu_second"]
        for r in rounds
    ]
    report["throughput"] = {
        "concurrency": 16,
        "ratio_spread_to_single_per_cpu_second": round(statistics.mean(per_cpu), 3),
        "seconds_per_run": args.seconds,
        "rounds": rounds,
        "ratio_spread_to_single": round(spread_rps / single_rps, 3),
        "met": spread_rps / single_rps >= 0.9,
    }
    report["latency"]["met"] = report["latency"]["ratio_4_to_1"] <= 1.3

    if not args.skip_whole:
        whole_env = {**env, "VGGSVC_SHARE_BASE": "false"}
        with running_service(eight, log=work / "whole.log", env=whole_env, timeout_s=900) as (
            url,
            process,
        ):
            warm(url, image, MODELS)
            rss_whole = rss_mb(process.pid)
            spread_whole = traffic(url, process.pid, image, MODELS, args.seconds)
            single_whole = traffic(url, process.pid, image, ["m0"] * 8, args.seconds)
        report["whole_for_comparison"] = {
            "rss_mb_8_models_whole": round(rss_whole, 1),
            "spread_over_8": spread_whole,
            "all_to_1": single_whole,
            "shared_to_whole_spread_over_8": round(
                (spread_rps / len(rounds)) / spread_whole["throughput_rps"], 3
            ),
            # The same per CPU-second of the service: what the cores do, whatever share
            # of them the loaded machine gave each process.
            "shared_to_whole_spread_over_8_per_cpu_second": round(
                statistics.mean(r["spread_over_8"]["requests_per_cpu_second"] for r in rounds)
                / spread_whole["requests_per_cpu_second"],
                3,
            ),
            # Single-model traffic, shared-base vs whole (separate processes, run one after
            # the other: noisier than the interleaved ratios above).
            "shared_to_whole_all_to_1": round(
                (single_rps / len(rounds)) / single_whole["throughput_rps"], 3
            ),
        }

    report["seconds"] = round(time.monotonic() - started, 1)
    shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
