"""Closed-loop HTTP load generator for the serving benchmark (runs in its own process).

Run: python -m bench.support.loadgen --url http://127.0.0.1:8000/predict --image photo.jpg \
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
from urllib.parse import urlsplit


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def multipart_request(url: str, image: bytes) -> tuple[str, int, bytes]:
    """(host, port, the whole HTTP/1.1 request as bytes): built once, sent many times."""
    parts = urlsplit(url)
    boundary = "loadgen-boundary-7d1f"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    return parts.hostname or "127.0.0.1", parts.port or 80, head + body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bool]:
    """Send one request, read one response; (status, server asked to close)."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection") == "close"


async def run(url: str, image: bytes, concurrency: int, requests: int, max_seconds: float) -> dict:
    """Closed loop: `concurrency` keep-alive connections, each sending the next request
    when its answer arrives. Raw sockets and a request built once keep the generator's
    own CPU cost low: on a 2-core machine it shares the cores with the server."""
    host, port, request = multipart_request(url, image)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    issued = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal issued
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while issued < requests and time.perf_counter() < deadline:
            issued += 1
            start = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection(host, port)
                status, close = await asyncio.wait_for(_exchange(*connection, request), 120)
                label = str(status)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                label, close = exc.__class__.__name__, True
            if label == "200":
                latencies.append(time.perf_counter() - start)
            else:
                errors[label] = errors.get(label, 0) + 1
            if close and connection is not None:
                connection[1].close()
                connection = None
        if connection is not None:
            connection[1].close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
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
