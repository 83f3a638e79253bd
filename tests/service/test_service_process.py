"""The real server process: `python -m service` answers HTTP and exits cleanly on SIGTERM."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.harness import free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_until_queued(base: str) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        if 'vggsvc_queue_depth{model="car_truck",version="1"} 1.0' in metrics:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.timeout(180)
def test_process_serves_and_exits_cleanly_on_sigterm(fresh_dir: Path, png: bytes) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VGGSVC_POLL_INTERVAL_S": "0"}
    command = [
        sys.executable,
        "-m",
        "service",
        "--models-dir",
        str(fresh_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--batch-sizes",
        "1,2",
        "--max-batch-size",
        "2",
        "--graceful-timeout-s",
        "10",
        "--log-level",
        "warning",
        # A long batch delay keeps a request queued while SIGTERM arrives.
        "--max-batch-delay-ms",
        "1500",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        ready = False
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                ready = False
            if ready:
                break
            time.sleep(0.25)
        assert ready, "the server never became ready"
        response = httpx.post(f"{base}/predict", content=png, timeout=30)
        assert response.status_code == 200
        assert response.json()["model"] == "car_truck"
        assert httpx.get(f"{base}/healthz", timeout=5).json()["status"] == "ok"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            queued = pool.submit(httpx.post, f"{base}/predict", content=png, timeout=30)
            assert wait_until_queued(base), "the request never reached the batch queue"
            process.send_signal(signal.SIGTERM)
            # The queued batch still runs and its request gets its answer.
            assert queued.result().status_code == 200
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "Traceback" not in output


def test_process_rejects_invalid_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "--port", "99999"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "port" in result.stderr


def test_process_readyz_turns_503_when_shutdown_starts(fresh_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app
    from tests.service.conftest import make_settings

    with TestClient(create_app(make_settings(fresh_dir))) as client:
        assert client.get("/readyz").status_code == 200
        client.app.state.service.drain.started.set()  # type: ignore[attr-defined]  # what SIGTERM does
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "shutting down" in response.json()["error"]
