"""The Python client against a live service (a real `python -m service` process with a tiny
model), and its retry policy against a stub answering 503 + Retry-After (attempts counted)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from bench.support.harness import export_tiny, running_service
from client import ApiError, AsyncClient, Client, RetryPolicy
from tests.conftest import encode

LABELS = ["car", "truck"]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("client")
    export_tiny(root / "models", "car_truck", LABELS, width=8)
    with running_service(
        root / "models",
        "--batch-sizes",
        "1,2",
        "--max-batch-size",
        "2",
        "--precision",
        "fp32",
        log=root / "service.log",
    ) as (base_url, _):
        yield base_url


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pictures") / "vehicle.png"
    path.write_bytes(encode(np.random.default_rng(3).integers(0, 256, (40, 48, 3), np.uint8)))
    return path


def test_client_sync_calls_against_live_service(url: str, picture: Path) -> None:
    with Client(url, default_model="car_truck") as api:
        assert api.health().ok and api.ready().ok
        models = api.models()
        assert [m.name for m in models.models] == ["car_truck"] and models.loading == []
        result = api.predict(picture)
        assert (result.model, result.version) == ("car_truck", 1)
        (image,) = result.predictions
        assert image.filename == "vehicle.png"
        assert sorted(c.label for c in image.classes) == LABELS
        scores = [c.score for c in image.classes]
        assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1, abs=1e-4)
        top = api.decode_predictions([picture, picture.read_bytes()], top=1)
        assert [len(p.classes) for p in top.predictions] == [1, 1]
        assert top.predictions[0].classes[0] == image.classes[0]
        rows = api.tfserving_predict([picture.read_bytes()], version=1)
        by_label = {c.label: c.score for c in image.classes}
        assert rows[0] == pytest.approx([by_label[label] for label in LABELS], abs=1e-5)


def test_client_async_calls_against_live_service(url: str, picture: Path) -> None:
    async def calls() -> None:
        async with AsyncClient(url) as api:
            assert (await api.health()).ok and (await api.ready()).ok
            assert (await api.models()).default_model == "car_truck"
            result = await api.predict(picture.read_bytes())
            top = await api.decode_predictions(picture, top=1)
            assert top.predictions[0].classes[0] == result.predictions[0].classes[0]
            rows = await api.tfserving_predict([picture.read_bytes()], model="car_truck")
            assert max(rows[0]) == pytest.approx(result.predictions[0].classes[0].score, abs=1e-5)

    asyncio.run(calls())


def test_client_error_carries_status_and_api_message(url: str) -> None:
    with Client(url) as api:
        with pytest.raises(ApiError) as caught:
            api.predict(b"not a picture at all")
        assert caught.value.status == 415
        assert (
            caught.value.message == caught.value.body["error"] and "image" in caught.value.message
        )
        with pytest.raises(ApiError) as unknown:
            api.predict(b"x", model="no_such_model")
        assert unknown.value.status == 404 and "no_such_model" in unknown.value.message
        assert api.attempts == 2  # errors other than 503/429 are not retried


PREDICTION = {
    "model": "car_truck",
    "version": 1,
    "predictions": [
        {"filename": "image", "classes": [{"class_id": 0, "label": "car", "score": 1.0}]}
    ],
}


def _stub(
    busy_answers: int, retry_after: str | None = "2"
) -> tuple[httpx.MockTransport, list[int]]:
    """A service that answers 503 (with Retry-After) `busy_answers` times, then 200."""
    seen: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        if len(seen) <= busy_answers:
            headers = {"Retry-After": retry_after} if retry_after else {}
            return httpx.Response(503, json={"error": "queue full", "status": 503}, headers=headers)
        return httpx.Response(200, json=PREDICTION)

    return httpx.MockTransport(answer), seen


def test_client_retries_after_retry_after_then_succeeds() -> None:
    transport, seen = _stub(busy_answers=2)
    waits: list[float] = []
    with Client("http://stub", transport=transport, sleep=waits.append) as api:
        assert api.predict(b"png").predictions[0].classes[0].label == "car"
    assert len(seen) == 3 and waits == [2.0, 2.0]


def test_client_gives_up_after_max_attempts() -> None:
    transport, seen = _stub(busy_answers=10, retry_after=None)
    waits: list[float] = []
    policy = RetryPolicy(max_attempts=3, max_total_wait_s=100, default_wait_s=0.5)
    with (
        Client("http://stub", transport=transport, retry=policy, sleep=waits.append) as api,
        pytest.raises(ApiError) as caught,
    ):
        api.predict(b"png")
    assert caught.value.status == 503 and caught.value.message == "queue full"
    assert len(seen) == 3 and waits == [0.5, 0.5]


def test_client_gives_up_before_waiting_past_max_total_wait() -> None:
    transport, seen = _stub(busy_answers=10, retry_after="2")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def call() -> None:
        policy = RetryPolicy(max_attempts=10, max_total_wait_s=5)
        async with AsyncClient(
            "http://stub", transport=transport, retry=policy, sleep=sleep
        ) as api:
            with pytest.raises(ApiError):
                await api.predict(b"png", model="car_truck")

    asyncio.run(call())
    assert waits == [2.0, 2.0] and len(seen) == 3  # a third wait would make 6 s > 5 s
