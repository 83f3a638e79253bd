"""The real server process: `python -m service` answers HTTP and drains on SIGTERM.

One process serves every SIGTERM test (starting one costs 10-30 s on a loaded 2-core
machine): `shutdown_run` serves a full batch, queues a lone request behind a long
batch delay, sends SIGTERM, probes the process until that request is answered, and
records what it saw; the tests below each check one part of the record.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient

from bench.support.harness import running_service
from imaging.decode import load_image
from modelstore.loader import PublishedModel
from modelstore.split_loader import LoadedBase
from service.__main__ import Server
from service.app import create_app
from service.drain import Drain
from tests.service.conftest import SIZE, make_settings, publish_copy, wait_for

ROOT = Path(__file__).resolve().parents[2]
# A lone request waits this long for company: the window in which the test sees it
# queued, sends SIGTERM and probes the draining process. Wide on purpose (a busy
# machine can stall the test for seconds); a full batch does not wait for it.
BATCH_DELAY_MS = 8000
QUEUED = 'vggsvc_queue_depth{model="car_truck",version="1"} 1.0'


@dataclass
class Probe:
    """One round of requests sent while the queued request was still unanswered."""

    ready: int
    ready_body: dict[str, Any]
    live: int
    new_work: int
    new_work_retry_after: str | None
    new_work_body: dict[str, Any]


@dataclass
class ShutdownRun:
    served: httpx.Response | None = None  # a full batch, before the signal
    queued_seen: bool = False
    probes: list[Probe] = field(default_factory=list)
    in_flight: httpx.Response | None = None  # the request queued when SIGTERM came
    returncode: int | None = None
    log: str = ""


@pytest.fixture(scope="module")
def shutdown_run(
    model_store: Path, png: bytes, jpeg: bytes, tmp_path_factory: pytest.TempPathFactory
) -> ShutdownRun:
    root = tmp_path_factory.mktemp("process")
    models = root / "models"
    (models / "car_truck").mkdir(parents=True)
    publish_copy(model_store, models, "car_truck", 1, 1)
    flags = ["--batch-sizes", "1,2", "--max-batch-size", "2", "--poll-interval-s", "0"]
    flags += ["--max-batch-delay-ms", str(BATCH_DELAY_MS), "--graceful-timeout-s", "60"]
    run = ShutdownRun()
    with running_service(models, *flags, log=root / "service.log") as (url, process):
        two = [("file", ("a.png", png, "image/png")), ("file", ("b.jpg", jpeg, "image/jpeg"))]
        run.served = httpx.post(f"{url}/predict", files=two, timeout=60)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(httpx.post, f"{url}/predict", content=png, timeout=120)
            run.queued_seen = wait_for(lambda: QUEUED in httpx.get(f"{url}/metrics").text)
            process.send_signal(signal.SIGTERM)
            while run.queued_seen and not in_flight.done():
                try:
                    ready = httpx.get(f"{url}/readyz", timeout=5)
                    live = httpx.get(f"{url}/healthz", timeout=5)
                    if in_flight.done():
                        break  # these answers may have come after the drain ended
                    new_work = httpx.post(f"{url}/predict", content=png, timeout=5)
                except httpx.ConnectError:
                    # The port closes once nothing is in flight: the queued request has
                    # been answered even if its client thread has not read it yet.
                    break
                run.probes.append(
                    Probe(
                        ready.status_code,
                        ready.json(),
                        live.status_code,
                        new_work.status_code,
                        new_work.headers.get("Retry-After"),
                        new_work.json(),
                    )
                )
                time.sleep(0.2)
            run.in_flight = in_flight.result()
        run.returncode = process.wait(timeout=90)
    run.log = (root / "service.log").read_text(errors="replace")
    return run


pytestmark = pytest.mark.timeout(300)


def test_process_serves_and_exits_cleanly_on_sigterm(shutdown_run: ShutdownRun) -> None:
    run = shutdown_run
    assert run.served is not None and run.served.status_code == 200, run.log[-3000:]
    body = run.served.json()
    assert body["model"] == "car_truck"
    assert [p["filename"] for p in body["predictions"]] == ["a.png", "b.jpg"]
    assert run.queued_seen, "the lone request never reached the batch queue"
    # The request queued when SIGTERM came is still answered, then the process exits 0.
    assert run.in_flight is not None and run.in_flight.status_code == 200, run.in_flight
    assert run.in_flight.json()["model"] == "car_truck"
    assert run.returncode == 0, run.log[-3000:]
    assert "Traceback" not in run.log


def test_process_readyz_turns_503_when_shutdown_starts(shutdown_run: ShutdownRun) -> None:
    # Every probe was answered while the queued request was still waiting for its answer:
    # readiness says 503 through the drain (never "connection refused").
    assert len(shutdown_run.probes) >= 3, f"the drain was too short to observe: {shutdown_run}"
    for probe in shutdown_run.probes:
        assert probe.ready == 503, probe
        assert probe.ready_body["status"] == 503
        assert "shutting down" in probe.ready_body["error"]


def test_process_drain_keeps_liveness_and_sends_new_work_away(shutdown_run: ShutdownRun) -> None:
    assert shutdown_run.probes, "no probe was answered during the drain"
    for probe in shutdown_run.probes:
        assert probe.live == 200, probe
        assert probe.new_work == 503 and probe.new_work_retry_after == "1", probe
        assert probe.new_work_body["status"] == 503 and probe.new_work_body["error"]


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


def test_process_log_has_no_tensorflow_start_up_lines(shutdown_run: ShutdownRun) -> None:
    # TF 2.21 prints its oneDNN notice through absl whatever TF_CPP_MIN_LOG_LEVEL says;
    # the service imports TensorFlow through modelstore.tf_quiet (--verbose shows them).
    assert "Application startup complete" in shutdown_run.log  # the log was captured
    assert "oneDNN custom operations" not in shutdown_run.log, shutdown_run.log[:2000]
    assert "absl::InitializeLog" not in shutdown_run.log


def _signalled_server(in_flight: int, delay_s: float, timeout_s: float) -> tuple[Server, float]:
    """A Server (never started) that has just been sent SIGTERM, and when it was sent."""

    async def app(scope: Any, receive: Any, send: Any) -> None:  # never called
        raise AssertionError("no request is served in these tests")

    drain = Drain(in_flight=in_flight)
    server = Server(uvicorn.Config(app), drain, delay_s=delay_s, timeout_s=timeout_s)
    began = time.monotonic()
    server.handle_exit(signal.SIGTERM, None)
    return server, began


def test_process_drain_gives_up_on_requests_in_flight_after_graceful_timeout() -> None:
    # A request that never finishes must not keep the process from stopping.
    server, began = _signalled_server(in_flight=1, delay_s=0.0, timeout_s=1.0)
    assert wait_for(lambda: server.should_exit, timeout_s=30), "the drain never ended"
    assert time.monotonic() - began >= 1.0  # it did wait the graceful timeout first


def test_process_drain_keeps_the_port_open_for_drain_delay_when_idle() -> None:
    # Nothing in flight: the drain still lasts drain_delay_s, so a balancer polling
    # /readyz sees the 503 before the port closes.
    server, began = _signalled_server(in_flight=0, delay_s=2.0, timeout_s=0.0)
    assert wait_for(lambda: server.should_exit, timeout_s=30)
    assert time.monotonic() - began >= 2.0


@pytest.mark.parametrize("share_base", [True, False], ids=["shared-base", "whole"])
def test_process_shutdown_waits_at_most_graceful_timeout_for_a_stuck_model_call(
    fresh_dir: Path, png: bytes, monkeypatch: pytest.MonkeyPatch, share_base: bool
) -> None:
    # Releasing the models at shutdown waits for each batcher thread, but only
    # graceful_timeout_s: a model call that never returns must not hold the exit.
    # car_truck has a head/: on a shared base the stuck call is the base's, whole it
    # is the model's; both paths must be bounded.
    stuck = threading.Event()
    entered = threading.Event()
    release = threading.Event()
    real = PublishedModel.predict
    real_features = LoadedBase.features

    def stuck_after_warm_up(self: PublishedModel, pictures: np.ndarray) -> np.ndarray:
        if stuck.is_set():
            entered.set()
            release.wait(90)
        return real(self, pictures)

    def stuck_base_after_warm_up(self: LoadedBase, images: np.ndarray) -> np.ndarray:
        if stuck.is_set():
            entered.set()
            release.wait(90)
        return real_features(self, images)

    monkeypatch.setattr(PublishedModel, "predict", stuck_after_warm_up)
    monkeypatch.setattr(LoadedBase, "features", stuck_base_after_warm_up)
    settings = make_settings(fresh_dir, graceful_timeout_s=1, share_base=share_base)
    try:
        with TestClient(create_app(settings)) as client:
            batcher = client.app.state.service.repository.get("car_truck").batcher  # type: ignore[attr-defined]
            stuck.set()
            batcher.submit(load_image(png, SIZE)[None])
            assert entered.wait(30)
            began = time.monotonic()
        assert time.monotonic() - began < 45, "shutdown waited for the stuck model call"
    finally:
        release.set()
