"""Dynamic batching: concurrent requests share model calls and each gets its own answer."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from fastapi.testclient import TestClient

from imaging.decode import load_image
from service.app import create_app
from service.batcher import DynamicBatcher, Predict
from service.errors import NotReady, Overloaded
from tests.conftest import encode
from tests.service.conftest import SIZE, make_settings, wait_for


def test_batching_concurrent_requests_share_model_calls(fresh_dir: Path) -> None:
    n = 8
    rng = np.random.default_rng(3)
    images = [encode(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)) for _ in range(n)]
    # What the SavedModel says for each image on its own, one call per image.
    saved = tf.saved_model.load(str(fresh_dir / "car_truck" / "1"))
    alone = [
        saved.signatures["serving_default"](images=tf.constant(load_image(image, SIZE)[None]))[
            "probabilities"
        ].numpy()[0]
        for image in images
    ]
    assert len({round(float(row[0]), 6) for row in alone}) > 1  # the answers tell images apart
    # A generous delay so every request joins the first batches even on a busy machine.
    settings = make_settings(
        fresh_dir, max_batch_size=8, batch_sizes="1,8", max_batch_delay_ms=1000
    )
    with TestClient(create_app(settings)) as client:
        batcher = client.app.state.service.repository.get("car_truck").batcher  # type: ignore[attr-defined]
        calls_before = batcher.model_calls
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            together = list(pool.map(lambda image: client.post("/predict", content=image), images))
        calls = batcher.model_calls - calls_before
    assert all(response.status_code == 200 for response in together)
    assert calls < n
    for single, batched in zip(alone, together, strict=True):
        classes = batched.json()["predictions"][0]["classes"]
        got = [c["score"] for c in sorted(classes, key=lambda c: c["class_id"])]
        assert np.max(np.abs(np.array(got) - single)) <= 1e-5


def echo_rows(seen: list[int]) -> Predict:
    """A stand-in model for the batcher's own mechanics: row i answers its first pixel."""

    def predict(images: np.ndarray) -> np.ndarray:
        seen.append(len(images))
        return images[:, 0, 0, :2].astype(np.float32)

    return predict


def batch_of(value: int, n: int = 1) -> np.ndarray:
    return np.full((n, 2, 2, 3), value, np.uint8)


def test_batcher_pads_to_buckets_and_splits_large_requests() -> None:
    seen: list[int] = []
    batcher = DynamicBatcher(echo_rows(seen), "echo", 1, [1, 4], max_delay_s=0.0, max_queue=64)
    try:
        three = batcher.submit(batch_of(3, 3)).result(timeout=10)
        assert three.shape == (3, 2) and np.all(three == 3)
        nine = batcher.submit(batch_of(9, 9)).result(timeout=10)
        assert nine.shape == (9, 2) and np.all(nine == 9)
    finally:
        batcher.close(timeout_s=10)
    assert seen == [4, 4, 4, 1]  # 3 padded to 4; 9 split into 4 + 4 + 1
    assert batcher.model_calls == 4


def test_batcher_close_finishes_queued_work() -> None:
    entered = threading.Event()
    release = threading.Event()
    seen: list[int] = []
    inner = echo_rows(seen)

    def held(images: np.ndarray) -> np.ndarray:
        entered.set()
        release.wait(30)
        return inner(images)

    batcher = DynamicBatcher(held, "held", 1, [1, 2], max_delay_s=0.0, max_queue=2)
    first = batcher.submit(batch_of(1))
    assert entered.wait(10)  # the worker is inside the first model call...
    second = batcher.submit(batch_of(2))  # ...so this one waits in the queue
    with pytest.raises(Overloaded):
        batcher.submit(batch_of(3, 2))  # 1 queued + 2 > max_queue
    closer = threading.Thread(target=batcher.close, kwargs={"timeout_s": 30})
    closer.start()
    # close() has begun (new work is refused) while the queued job still waits.
    assert wait_for(lambda: batcher._closing)
    with pytest.raises(NotReady):
        batcher.submit(batch_of(4))
    assert not second.done()
    release.set()
    closer.join(30)
    assert not closer.is_alive()
    assert first.result(timeout=0)[0, 0] == 1
    assert second.result(timeout=0)[0, 0] == 2  # queued before close(): still answered
    assert seen == [1, 1]


def test_batcher_close_gives_up_on_a_stuck_model_call_after_its_timeout() -> None:
    # Shutdown gives each batcher graceful_timeout_s: a model call that never returns
    # must not hold the process forever.
    entered = threading.Event()
    release = threading.Event()

    def stuck(images: np.ndarray) -> np.ndarray:
        entered.set()
        release.wait(60)
        return np.zeros((len(images), 2), np.float32)

    batcher = DynamicBatcher(stuck, "stuck", 1, [1], max_delay_s=0.0, max_queue=4)
    try:
        batcher.submit(batch_of(1))
        assert entered.wait(10)
        closer = threading.Thread(target=batcher.close, kwargs={"timeout_s": 0.5})
        closer.start()
        closer.join(30)
        assert not closer.is_alive(), "close() waited for the stuck call past its timeout"
    finally:
        release.set()


def test_batcher_lone_request_waits_for_the_batch_delay_then_runs() -> None:
    seen: list[int] = []
    delay = 0.5
    batcher = DynamicBatcher(echo_rows(seen), "echo", 1, [1, 4], max_delay_s=delay, max_queue=64)
    try:
        began = time.perf_counter()
        result = batcher.submit(batch_of(5)).result(timeout=30)
        waited = time.perf_counter() - began
    finally:
        batcher.close(timeout_s=10)
    assert result[0, 0] == 5 and seen == [1]
    # It waited for company until its deadline, and then went alone: the upper bound only
    # catches a deadline that is not kept at all (a loaded machine may add seconds).
    assert delay <= waited < delay + 10


def test_batcher_full_batch_goes_at_once() -> None:
    seen: list[int] = []
    # A delay no test waits for: only a full batch can explain an answer.
    batcher = DynamicBatcher(echo_rows(seen), "echo", 1, [1, 4], max_delay_s=600, max_queue=64)
    try:
        futures = [batcher.submit(batch_of(i)) for i in range(4)]
        results = [future.result(timeout=30) for future in futures]
    finally:
        batcher.close(timeout_s=10)
    assert [int(r[0, 0]) for r in results] == [0, 1, 2, 3]
    assert seen == [4] and batcher.model_calls == 1


def test_batcher_takes_at_most_max_batch_size_images_per_batch() -> None:
    """Jobs past the cap stay queued for the next batch: counted in the depth, cancellable."""
    seen: list[int] = []
    inner = echo_rows(seen)
    finish = threading.Semaphore(0)  # one release lets one model call return
    entered = threading.Semaphore(0)  # released as each model call starts

    def held(images: np.ndarray) -> np.ndarray:
        entered.release()
        assert finish.acquire(timeout=30)
        return inner(images)

    batcher = DynamicBatcher(held, "held", 1, [1, 4], max_delay_s=0.0, max_queue=64)
    try:
        first = batcher.submit(batch_of(0))
        assert entered.acquire(timeout=10)  # call 1 holds job 0...
        rest = [batcher.submit(batch_of(i)) for i in range(1, 6)]  # ...five queue behind it
        finish.release()
        assert entered.acquire(timeout=10)  # call 2 has taken its batch
        assert [future.running() for future in rest] == [True, True, True, True, False]
        assert batcher._queued_images == 1
        finish.release(2)
        results = [future.result(timeout=30) for future in [first, *rest]]
    finally:
        finish.release(10)
        batcher.close(timeout_s=10)
    assert [int(r[0, 0]) for r in results] == [0, 1, 2, 3, 4, 5]
    assert seen == [1, 4, 1]
