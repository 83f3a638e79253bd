"""Recorded closed-loop traffic: POST /predict from worker threads, every request kept.

    with Traffic(url, image, concurrency=8, max_requests=500, pause_s=0.5) as traffic:
        ...                          # roll replicas, kill one, publish a version
    outcomes = traffic.outcomes      # one Outcome per request, in completion order

Unlike bench/support/loadgen.py (a separate process that only reports a summary), this keeps each
request's timing, status, model version and serving replica, so a test can ask which
requests failed, when, and what version answered after a roll. It runs in the calling
process: for the modest rates of a rolling-update proof, not for peak-throughput figures.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from bench.support.cluster import SERVED_BY
from bench.support.loadgen import percentile


@dataclass(frozen=True)
class Outcome:
    started: float  # time.monotonic()
    ended: float
    status: int | None  # None: no HTTP answer at all (the error says why)
    version: int | None  # X-Model-Version of a 200
    replica: str | None  # X-Served-By (set by HAProxy)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


class Traffic:
    """`concurrency` threads each sending one request at a time (then about `pause_s` of
    rest) until `max_requests` were sent or `stop()` is called."""

    def __init__(
        self,
        url: str,
        image: bytes,
        concurrency: int,
        max_requests: int,
        pause_s: float = 0.0,
        timeout_s: float = 120.0,
    ) -> None:
        self.url = url
        self.image = image
        self.concurrency = concurrency
        self.max_requests = max_requests
        self.pause_s = pause_s
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._issued = 0
        self._outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, name=f"traffic-{i}", daemon=True)
            for i in range(concurrency)
        ]
        self.started = self.ended = 0.0

    def __enter__(self) -> Traffic:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()

    def stop(self) -> list[Outcome]:
        """Stop sending, wait for the requests in flight; every outcome."""
        self._stop.set()
        return self.join()

    def join(self) -> list[Outcome]:
        """Wait until the workers are done (`max_requests` sent, or stopped); every outcome."""
        for thread in self._threads:
            thread.join()
        self.ended = self.ended or time.monotonic()
        return self.outcomes

    @property
    def outcomes(self) -> list[Outcome]:
        with self._lock:
            return list(self._outcomes)

    def wait_started_after(self, moment: float, count: int, timeout_s: float = 120.0) -> None:
        """Wait until `count` requests that started after `moment` have finished."""
        deadline = time.monotonic() + timeout_s
        while sum(o.started > moment for o in self.outcomes) < count:
            if time.monotonic() > deadline or not any(t.is_alive() for t in self._threads):
                raise RuntimeError(f"fewer than {count} requests finished after the moment")
            time.sleep(0.05)

    def _take_ticket(self) -> bool:
        with self._lock:
            if self._stop.is_set() or self._issued >= self.max_requests:
                return False
            self._issued += 1
            return True

    def _work(self) -> None:
        files = {"file": ("image.png", self.image, "application/octet-stream")}
        with httpx.Client(timeout=self.timeout_s) as client:
            while self._take_ticket():
                started = time.monotonic()
                try:
                    response = client.post(self.url + "/predict", files=files)
                except httpx.HTTPError as exc:
                    outcome = Outcome(started, time.monotonic(), None, None, None, repr(exc))
                else:
                    version = response.headers.get("X-Model-Version")
                    outcome = Outcome(
                        started,
                        time.monotonic(),
                        response.status_code,
                        int(version) if version and response.status_code == 200 else None,
                        response.headers.get(SERVED_BY),
                        "" if response.status_code == 200 else response.text[:200],
                    )
                with self._lock:
                    self._outcomes.append(outcome)
                if self.pause_s:
                    # Jittered, so that the workers do not move in lockstep (all waiting at once).
                    self._stop.wait(self.pause_s * random.uniform(0.5, 1.5))


def summarize(outcomes: list[Outcome], seconds: float) -> dict[str, Any]:
    """Counts, failures by status, throughput and latency percentiles (of the 200s)."""
    latencies = sorted(o.ended - o.started for o in outcomes if o.ok)
    failures: dict[str, int] = {}
    for o in outcomes:
        if not o.ok:
            key = str(o.status) if o.status is not None else o.error.split("(")[0]
            failures[key] = failures.get(key, 0) + 1
    served: dict[str, int] = {}
    for o in outcomes:
        if o.ok and o.replica:
            served[o.replica] = served.get(o.replica, 0) + 1
    return {
        "requests": len(outcomes),
        "ok": len(latencies),
        "failed": len(outcomes) - len(latencies),
        "failures": failures,
        "served_by": dict(sorted(served.items())),
        "seconds": round(seconds, 2),
        "throughput_rps": round(len(latencies) / seconds, 2) if seconds else 0.0,
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
    }
