"""Closed-loop HTTP load generator for the serving benchmark (runs in its own process).

Run: python -m bench.loadgen --url http://127.0.0.1:8000/predict --image photo.jpg \
        --concurrency 16 --requests 200
Prints one JSON object: throughput, latency percentiles, errors. Bounded by
--requests and --max-seconds; only ever targets the URL it is given (loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def run(url: str, image: bytes, concurrency: int, requests: int, max_seconds: float) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    issued = 0
    deadline = time.perf_counter() + max_seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < requests and time.perf_counter() < deadline:
            issued += 1
            start = time.perf_counter()
            try:
                response = await client.post(
                    url, files={"file": ("photo.jpg", image, "image/jpeg")}
                )
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status = exc.__class__.__name__
            if status == "200":
                latencies.append(time.perf_counter() - start)
            else:
                errors[status] = errors.get(status, 0) + 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "concurrency": concurrency,
        "requests": len(latencies) + sum(errors.values()),
        "ok": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 3),
        "throughput_rps": round(len(latencies) / elapsed, 3) if elapsed else 0.0,
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    args = parser.parse_args()
    result = asyncio.run(
        run(args.url, args.image.read_bytes(), args.concurrency, args.requests, args.max_seconds)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
