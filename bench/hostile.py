"""Benchmark: a normal client's latency and the service's memory under hostile clients.

Run: python -m bench.hostile [--image-size 64] [--seconds 15] [--attackers 4]

Starts `python -m service` with its default limits on a random-weight VGG16
classifier, measures a normal client (sequential `/predict` of a 640x480 JPEG)
alone, then beside `--attackers` concurrent attack clients of each class:

- `jpeg_scan_bomb`: 36 MP progressive JPEGs with 5,000 scans (506 KB each);
- `webp_canvas_bomb`: 140-byte animated WebPs with a 6000x6000 canvas;
- `idle_sockets`: 200 sockets per client that connect and never send (reopened
  as the server closes them);
- `stalled_upload`: 19 MB bodies that stop 1 KB before their end (reconnecting
  after each 408).

Per class: the normal client's p50 against its unloaded p50 (ratio, same run),
its statuses, the service's peak RSS during the attack against its idle RSS
(ratio) and its RSS 3 s after the attackers leave (MB over idle). Results go to
bench/results/hostile.json. The development machine is shared (2 cores): read
the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.support.decode_bombs import jpeg_scan_bomb, webp_canvas_bomb
from bench.support.harness import ROOT, export_tiny, rss_mb, running_service
from bench.support.photos import jpeg_from_cifar

RESULTS = ROOT / "bench" / "results" / "hostile.json"
IDLE_SOCKETS_PER_CLIENT = 200
UPLOAD_BYTES = 19 * 1024 * 1024


def normal_client(url: str, image: bytes, stop: threading.Event) -> tuple[list[float], Counter]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            began = time.perf_counter()
            try:
                status = client.post(f"{url}/predict", content=image).status_code
            except httpx.HTTPError:
                status = 0
            latencies.append(time.perf_counter() - began)
            statuses[status] += 1
    return latencies, statuses


def post_forever(body: bytes) -> Callable[[str, threading.Event, Counter], None]:
    def attack(url: str, stop: threading.Event, seen: Counter) -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                try:
                    seen[client.post(f"{url}/predict", content=body).status_code] += 1
                except httpx.HTTPError as exc:
                    seen[type(exc).__name__] += 1

    return attack


def idle_sockets(url: str, stop: threading.Event, seen: Counter) -> None:
    host, port = url.removeprefix("http://").split(":")
    open_sockets: list[socket.socket] = []
    while not stop.is_set():
        while len(open_sockets) < IDLE_SOCKETS_PER_CLIENT:
            try:
                open_sockets.append(socket.create_connection((host, int(port)), timeout=5))
                seen["opened"] += 1
            except OSError:
                seen["refused"] += 1
                break
        time.sleep(0.5)
        for sock in list(open_sockets):  # the server closed it: reconnect
            sock.setblocking(False)
            try:
                if sock.recv(1) == b"":
                    open_sockets.remove(sock)
                    sock.close()
                    seen["closed by server"] += 1
            except BlockingIOError:
                pass
            except OSError:
                open_sockets.remove(sock)
                sock.close()
    for sock in open_sockets:
        sock.close()


def stalled_upload(url: str, stop: threading.Event, seen: Counter) -> None:
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        f"Content-Length: {UPLOAD_BYTES}\r\n\r\n"
    ).encode()
    chunk = b"\0" * (1 << 20)
    while not stop.is_set():
        try:
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                sock.sendall(head)
                sent = 0
                while sent < UPLOAD_BYTES - 1024:
                    piece = chunk[: UPLOAD_BYTES - 1024 - sent]
                    sock.sendall(piece)
                    sent += len(piece)
                sock.settimeout(1.0)
                answer = b""
                while not stop.is_set():  # hold it open until the server gives up
                    try:
                        data = sock.recv(4096)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    answer += data
                seen[answer.split(b" ", 2)[1].decode() if answer else "closed"] += 1
        except OSError as exc:
            seen[type(exc).__name__] += 1


def run_phase(
    url: str,
    pid: int,
    image: bytes,
    seconds: float,
    attack: Callable[[str, threading.Event, Counter], None] | None,
    attackers: int,
) -> dict[str, Any]:
    stop = threading.Event()
    seen: Counter = Counter()
    threads = [
        threading.Thread(target=attack, args=(url, stop, seen), daemon=True)
        for _ in range(attackers if attack else 0)
    ]
    for thread in threads:
        thread.start()
    peak = [rss_mb(pid)]

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    client_stop = threading.Event()
    result: dict[str, Any] = {}

    def measure() -> None:
        result["latencies"], result["statuses"] = normal_client(url, image, client_stop)

    client = threading.Thread(target=measure)
    client.start()
    time.sleep(seconds)
    client_stop.set()
    client.join()
    stop.set()
    for thread in threads:
        thread.join(90)
    sampler.join()
    time.sleep(3.0)
    latencies = sorted(result["latencies"])
    return {
        "requests": len(latencies),
        "p50_s": round(statistics.median(latencies), 4),
        "p90_s": round(latencies[int(0.9 * (len(latencies) - 1))], 4),
        "statuses": {str(k): v for k, v in sorted(result["statuses"].items())},
        "attack_outcomes": {str(k): v for k, v in sorted(seen.items())},
        "peak_rss_mb": round(peak[0], 1),
        "rss_after_mb": round(rss_mb(pid), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--attackers", type=int, default=4)
    args = parser.parse_args()
    classes: dict[str, Callable[[str, threading.Event, Counter], None]] = {
        "jpeg_scan_bomb": post_forever(jpeg_scan_bomb(6000, 5000)),
        "webp_canvas_bomb": post_forever(webp_canvas_bomb(6000)),
        "idle_sockets": idle_sockets,
        "stalled_upload": stalled_upload,
    }
    image = jpeg_from_cifar(640, 480)
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        export_tiny(models, "car_truck", size=args.image_size)
        with running_service(models, "--poll-interval-s", "0", log=Path(tmp) / "log") as (
            url,
            process,
        ):
            for _ in range(10):  # warm-up
                httpx.post(f"{url}/predict", content=image, timeout=60)
            idle = run_phase(url, process.pid, image, args.seconds, None, 0)
            idle_rss = idle["peak_rss_mb"]
            phases: dict[str, Any] = {"unloaded": idle}
            for name, attack in classes.items():
                phase = run_phase(url, process.pid, image, args.seconds, attack, args.attackers)
                phase["p50_ratio"] = round(phase["p50_s"] / idle["p50_s"], 2)
                phase["peak_rss_ratio"] = round(phase["peak_rss_mb"] / idle_rss, 3)
                phase["rss_after_over_idle_mb"] = round(phase["rss_after_mb"] - idle_rss, 1)
                phases[name] = phase
                print(name, json.dumps(phase), flush=True)
            log_bytes = (Path(tmp) / "log").stat().st_size
    result = {
        "command": "python -m bench.hostile "
        f"--image-size {args.image_size} --seconds {args.seconds:g} "
        f"--attackers {args.attackers}",
        "machine": "shared 2-core development machine (other engineers' jobs running)",
        "service": "defaults (bf16 auto where the CPU has it); random-weight VGG16 "
        f"at {args.image_size} px",
        "idle_rss_mb": idle_rss,
        "service_log_bytes": log_bytes,
        "phases": phases,
        "targets": {"p50_ratio_max": 2.0, "peak_rss_ratio_max": 1.3, "rss_after_over_idle_mb": 50},
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
