"""Benchmark: replicas behind HAProxy on one box: a rolling update and a kill -9 under load,
throughput with 3 replicas vs 1, and what the proxy adds to latency.

Run: python -m bench.balancer [--image-size 128] [--requests 2000] [--concurrency 16]
                               [--precision fp32] [--pause-s 0]

Needs Debian's haproxy (`apt-get install -y haproxy`). In one run, on this machine:
1. exports car_truck versions 1 and 2 at `--image-size` (random base weights: weights do not
   change speed) into a side store, publishes version 1, and starts `--replicas` replicas of
   `python -m service` behind HAProxy (bench/support/cluster.py; replicas do not poll the repository,
   so only a restart moves a replica to a new version);
2. rolling update: while `--requests` requests (one 640x480 JPEG each, closed loop at
   `--concurrency`) go through HAProxy, publishes version 2 and restarts the replicas one at
   a time (SIGTERM, drain, exit, start, ready, UP in HAProxy); counts failed requests and
   the versions answered;
3. throughput and latency through HAProxy with every replica up (bench/support/loadgen.py, its own
   process);
4. kill -9 of one replica under load: requests failed, time until HAProxy marks it DOWN;
5. stops all replicas but one: throughput and latency through HAProxy with one replica;
6. the proxy's added latency: the same request sent straight to that replica and through
   HAProxy, alternating, one at a time (p50 of each), for /predict and for /healthz.
Writes bench/results/balancer.json (or --out) and prints a summary. About 6-10 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.serving import load
from bench.support.cluster import Cluster, Replica, publish_version
from bench.support.harness import ROOT, export_tiny, stop_service
from bench.support.loadgen import percentile
from bench.support.photos import jpeg_from_cifar
from bench.support.traffic import Traffic, summarize

RESULTS = ROOT / "bench" / "results" / "balancer.json"


def export_versions(store: Path, image_size: int) -> None:
    """car_truck versions 1 and 2 (different random weights), as the serving benchmark's."""
    for seed in (1, 2):
        export_tiny(store, "car_truck", size=image_size, width=256, head="flatten", seed=seed)


def replica_timings(replica: Replica) -> dict[str, float]:
    """Seconds from each SIGTERM of a roll to its exit, to ready, to UP in HAProxy."""
    events = replica.events
    term = max(i for i, (what, _) in enumerate(events) if what == "SIGTERM")
    at = {what: moment for what, moment in events[term:]}
    start = at["SIGTERM"]
    return {
        "drain_and_exit_s": round(at["exited"] - start, 2),
        "ready_s": round(at["ready"] - start, 2),
        "up_in_haproxy_s": round(at["haproxy UP"] - start, 2),
    }


def rolling_update(
    cluster: Cluster, store: Path, image: bytes, requests: int, concurrency: int, pause_s: float
) -> dict[str, Any]:
    before = cluster.backend_stats()
    with Traffic(cluster.url, image, concurrency, requests, pause_s) as traffic:
        traffic.wait_started_after(traffic.started, 2 * concurrency)  # steady load first
        began = time.monotonic()
        publish_version(store / "car_truck" / "2", cluster.models_dir)
        cluster.roll()
        rolled = time.monotonic()
        traffic.join()
    after = cluster.backend_stats()
    outcomes = traffic.outcomes
    return {
        "traffic": summarize(outcomes, traffic.ended - traffic.started),
        "roll_seconds": round(rolled - began, 1),
        "requests_started_during_roll": sum(began <= o.started <= rolled for o in outcomes),
        "requests_started_after_roll": sum(o.started > rolled for o in outcomes),
        "down_because": {r.name: r.down_checks for r in cluster.replicas},
        "versions_answered_after_roll": sorted(
            {o.version for o in outcomes if o.started > rolled and o.version is not None}
        ),
        "versions_per_replica_in_order": {
            r.name: _runs([o.version for o in outcomes if o.replica == r.name])
            for r in cluster.replicas
        },
        "served_versions_at_end": cluster.served_versions("car_truck"),
        "haproxy_retries": int(after["wretr"]) - int(before["wretr"]),
        "haproxy_redispatches": int(after["wredis"]) - int(before["wredis"]),
        "replicas": {r.name: replica_timings(r) for r in cluster.replicas},
    }


def _runs(values: list[Any]) -> list[list[Any]]:
    """[1, 1, 2, 2, 2] -> [[1, 2], [2, 3]]: each value and how many times in a row."""
    runs: list[list[Any]] = []
    for value in values:
        if runs and runs[-1][0] == value:
            runs[-1][1] += 1
        else:
            runs.append([value, 1])
    return runs


def kill_under_load(cluster: Cluster, image: bytes, concurrency: int) -> dict[str, Any]:
    victim = cluster.replicas[0]
    with Traffic(cluster.url, image, concurrency, max_requests=100_000) as traffic:
        traffic.wait_started_after(traffic.started, 3 * concurrency)
        on_victim = cluster.wait_in_flight(victim)
        killed = cluster.kill(victim)
        down = cluster.wait_status(victim, "DOWN", timeout_s=60)
        at_down = cluster.servers()[victim.name]
        traffic.wait_started_after(down, 5 * concurrency)
        traffic.stop()
    later = cluster.servers()[victim.name]
    outcomes = traffic.outcomes
    failed = [o for o in outcomes if not o.ok]
    return {
        "traffic": summarize(outcomes, traffic.ended - traffic.started),
        "failed": len(failed),
        "failed_all_in_flight_at_kill": all(o.started <= killed <= o.ended for o in failed),
        "in_flight_on_victim_at_kill": on_victim,  # HAProxy's count just before the kill
        "in_flight_at_kill_any_replica": sum(o.started <= killed <= o.ended for o in outcomes),
        "seconds_until_haproxy_down": round(down - killed, 2),
        "victim_response_errors": int(at_down["eresp"]),
        "victim_connection_errors": int(at_down["econ"]),
        "victim_redispatched": int(at_down["wredis"]),
        "requests_after_down": sum(o.started > down for o in outcomes),
        "failed_after_down": sum(not o.ok for o in outcomes if o.started > down),
        "sent_to_victim_after_down": int(later["stot"]) - int(at_down["stot"]),
    }


def added_latency(direct: str, proxied: str, path: str, count: int, image: bytes | None) -> dict:
    """p50 of the same request straight to a replica and through HAProxy, one at a time,
    alternating which goes first (both over kept-alive connections)."""
    times: dict[str, list[float]] = {"direct": [], "haproxy": []}
    files = {"file": ("photo.jpg", image, "image/jpeg")} if image else None
    with httpx.Client(timeout=60) as client:
        for i in range(count + 3):
            order = [("direct", direct), ("haproxy", proxied)]
            for label, base in order if i % 2 else order[::-1]:
                start = time.perf_counter()
                if files:
                    response = client.post(base + path, files=files)
                else:
                    response = client.get(base + path)
                elapsed = time.perf_counter() - start
                response.raise_for_status()
                if i >= 3:  # the first rounds open connections and warm caches
                    times[label].append(elapsed)
    p50 = {label: percentile(sorted(values), 0.5) * 1000 for label, values in times.items()}
    paired = [(h - d) * 1000 for d, h in zip(times["direct"], times["haproxy"], strict=True)]
    return {
        "path": path,
        "requests_each": count,
        "direct_p50_ms": round(p50["direct"], 2),
        "haproxy_p50_ms": round(p50["haproxy"], 2),
        "added_p50_ms": round(p50["haproxy"] - p50["direct"], 2),
        "median_paired_difference_ms": round(statistics.median(paired), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000, help="during the rolling update")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--throughput-requests", type=int, default=320)
    parser.add_argument("--latency-requests", type=int, default=100)
    # fp32, the slower precision on this CPU, so that --requests last about as long as the
    # roll (the report's requests_started_after_roll says whether they did).
    parser.add_argument("--precision", default="fp32", help="the replicas' --precision")
    parser.add_argument(
        "--pause-s", type=float, default=0.0, help="rest between a worker's requests in the roll"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-balancer-"))
    store, models_dir = work / "store", work / "models"
    export_versions(store, args.image_size)
    publish_version(store / "car_truck" / "1", models_dir)
    image = jpeg_from_cifar(640, 480)
    image_path = work / "photo.jpg"
    image_path.write_bytes(image)
    # Drain delay as docker-compose.yml's replicas: longer than HAProxy needs to notice.
    flags = ["--precision", args.precision, "--poll-interval-s", "0", "--drain-delay-s", "3"]
    flags += ["--log-level", "warning"]  # no access log line per request and per check
    print(f"work dir {work}; request image {len(image)} bytes", flush=True)

    report: dict[str, Any] = {}
    started = time.monotonic()
    with Cluster(models_dir, work, args.replicas, flags) as cluster:
        report["startup_seconds_all_replicas"] = round(time.monotonic() - started, 1)
        print(f"{args.replicas} replicas up in {report['startup_seconds_all_replicas']} s")

        roll = rolling_update(cluster, store, image, args.requests, args.concurrency, args.pause_s)
        report["rolling_update"] = roll
        print(f"rolling update: {json.dumps(roll)}", flush=True)

        url = cluster.url + "/predict"
        load(url, image_path, 2, 8)
        many = load(url, image_path, args.concurrency, args.throughput_requests)
        print(f"{args.replicas} replicas: {many}", flush=True)

        report["kill_9"] = kill_under_load(cluster, image, args.concurrency)
        print(f"kill -9: {json.dumps(report['kill_9'])}", flush=True)

        last = cluster.replicas[-1]
        for replica in cluster.replicas[1:-1]:  # [0] was killed
            assert replica.process is not None
            stop_service(replica.process)
            cluster.wait_status(replica, "DOWN")
        one = load(url, image_path, args.concurrency, args.throughput_requests)
        print(f"1 replica: {one}", flush=True)
        report["throughput"] = {f"{args.replicas}_replicas": many, "1_replica": one}

        report["proxy_added_latency"] = [
            added_latency(last.url, cluster.url, "/predict", args.latency_requests, image),
            added_latency(last.url, cluster.url, "/healthz", 5 * args.latency_requests, None),
        ]
        print(f"proxy: {json.dumps(report['proxy_added_latency'])}", flush=True)

    report = {
        "machine": f"{platform.machine()} cores={os.cpu_count()}",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "image_size": args.image_size,
        "precision": args.precision,
        "roll_traffic_pause_s": args.pause_s,
        "replicas": args.replicas,
        "concurrency": args.concurrency,
        "request_image": "640x480 JPEG (a CIFAR car photo upscaled, or generated)",
        **report,
        "seconds": round(time.monotonic() - started, 1),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
