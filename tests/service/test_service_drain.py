"""A real `python -m service` process drains on SIGTERM: probes keep answering 503 until the end."""

from __future__ import annotations

import concurrent.futures
import signal
import time
from pathlib import Path

import httpx
import pytest

from bench.harness import running_service


def wait_for_metric(url: str, text: str, timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in httpx.get(f"{url}/metrics", timeout=5).text:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.timeout(240)
def test_drain_keeps_probes_answering_503_until_in_flight_work_is_done(
    fresh_dir: Path, png: bytes, tmp_path: Path
) -> None:
    # A long batch delay holds the first request in the queue for the whole drain.
    flags = ("--max-batch-size", "4", "--max-batch-delay-ms", "6000", "--poll-interval-s", "0")
    with running_service(fresh_dir, *flags, log=tmp_path / "service.log") as (url, process):
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(httpx.post, f"{url}/predict", content=png, timeout=60)
            queued = 'vggsvc_queue_depth{model="car_truck",version="1"} 1.0'
            assert wait_for_metric(url, queued), "the request never reached the batch queue"
            process.send_signal(signal.SIGTERM)
            # For as long as the request is in flight, the port stays open: readiness says
            # 503 (never "connection refused"), liveness 200, and new work is sent away.
            probes = 0
            while not in_flight.done():
                try:
                    ready = httpx.get(f"{url}/readyz", timeout=5)
                    live = httpx.get(f"{url}/healthz", timeout=5)
                    refused = httpx.post(f"{url}/predict", content=png, timeout=5)
                except httpx.ConnectError:
                    # The port closes only once nothing is in flight, i.e. after the held
                    # request was answered (its client may not have read it yet).
                    assert in_flight.result(timeout=30).status_code == 200
                    break
                if in_flight.done():
                    break
                assert ready.status_code == 503, ready.text
                assert "shutting down" in ready.json()["error"]
                assert live.status_code == 200
                assert refused.status_code == 503
                assert refused.headers["Retry-After"] == "1"
                assert refused.json()["status"] == 503
                probes += 1
                time.sleep(0.2)
            assert probes >= 3, "the drain was too short to observe"
            answered = in_flight.result()
        assert answered.status_code == 200, answered.text
        assert answered.json()["model"] == "car_truck"
        assert process.wait(timeout=60) == 0
    log = (tmp_path / "service.log").read_text()
    assert "Traceback" not in log
