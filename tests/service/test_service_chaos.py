"""A real `python -m service` under load: SIGTERM with 16 requests in flight, and hot swaps.

PYTHONPATH=. python -m pytest tests/service/test_service_chaos.py -q
"""

from __future__ import annotations

import concurrent.futures
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.support.harness import metric, running_service, wait_until
from tests.service.conftest import publish_copy

IN_FLIGHT = 16
QUEUED = 'vggsvc_queue_depth{model="car_truck",version="1"}'


@pytest.mark.timeout(300)
def test_sigterm_with_16_requests_in_flight_answers_all_and_exits_0(
    fresh_dir: Path, png: bytes, tmp_path: Path
) -> None:
    # One batch waits up to 3 s for more images, so all 16 are provably in flight (queued)
    # when the signal arrives.
    flags = ("--max-batch-size", "32", "--max-batch-delay-ms", "3000", "--poll-interval-s", "0")
    log = tmp_path / "service.log"
    with running_service(fresh_dir, *flags, "--precision", "fp32", log=log) as (url, process):
        with concurrent.futures.ThreadPoolExecutor(IN_FLIGHT) as pool:
            requests = [
                pool.submit(httpx.post, f"{url}/predict", content=png, timeout=60)
                for _ in range(IN_FLIGHT)
            ]
            assert wait_until(lambda: metric(url, QUEUED) == IN_FLIGHT, timeout_s=30), (
                f"only {metric(url, QUEUED)} of {IN_FLIGHT} requests reached the queue"
            )
            process.send_signal(signal.SIGTERM)
            answers = [request.result() for request in requests]
        assert [answer.status_code for answer in answers] == [200] * IN_FLIGHT
        assert {answer.headers["X-Model-Version"] for answer in answers} == {"1"}
        assert process.wait(timeout=60) == 0
    assert "Traceback" not in log.read_text()


@dataclass(frozen=True)
class Answer:
    client: int
    sent: float
    answered: float
    status: int
    version: int


@pytest.mark.timeout(300)
def test_hot_swap_under_load_fails_no_request_and_never_goes_back(
    fresh_dir: Path, model_store: Path, png: bytes, tmp_path: Path
) -> None:
    answers: list[Answer] = []
    stop = threading.Event()

    def client(number: int, url: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    response = http.post("/predict", content=png)
                except httpx.HTTPError:  # a dropped connection is a failed request too
                    answers.append(Answer(number, sent, time.monotonic(), 0, 0))
                    continue
                version = int(response.headers.get("X-Model-Version", "0"))
                answers.append(
                    Answer(number, sent, time.monotonic(), response.status_code, version)
                )

    def served(version: int, then: int = 8) -> bool:
        """`then` answers from `version` after the first one."""
        versions = [answer.version for answer in list(answers)]
        return version in versions and len(versions) - versions.index(version) > then

    flags = ("--poll-interval-s", "0.2", "--precision", "fp32")
    with running_service(fresh_dir, *flags, log=tmp_path / "service.log") as (url, _):
        clients = [threading.Thread(target=client, args=(n, url)) for n in range(8)]
        for thread in clients:
            thread.start()
        try:
            assert wait_until(lambda: served(1))
            publish_copy(model_store, fresh_dir, "car_truck", 2, 2)
            assert wait_until(lambda: served(2), timeout_s=120), "version 2 never answered"
            publish_copy(model_store, fresh_dir, "car_truck", 1, 3)
            assert wait_until(lambda: served(3), timeout_s=120), "version 3 never answered"
        finally:
            stop.set()
            for thread in clients:
                thread.join(timeout=60)

    print(f"\nhot swap: {len(answers)} requests, versions {sorted({a.version for a in answers})}")
    failed = [a for a in answers if a.status != 200]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed: {failed[:5]}"
    assert {a.version for a in answers} == {1, 2, 3}
    for number in range(8):  # each client's answers, in the order it got them
        versions = [a.version for a in answers if a.client == number]
        assert versions == sorted(versions), f"client {number} went back: {versions}"
    # Across clients: a request sent after another was answered never gets an older version.
    by_answer = sorted(answers, key=lambda a: a.answered)
    newest, seen = 0, 0
    for answer in sorted(answers, key=lambda a: a.sent):
        while seen < len(by_answer) and by_answer[seen].answered < answer.sent:
            newest = max(newest, by_answer[seen].version)
            seen += 1
        assert answer.version >= newest, f"{answer} after version {newest} was answered"
