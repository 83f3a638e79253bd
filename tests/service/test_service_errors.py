"""Every bad input gets its status and a JSON message; the service keeps answering."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from imaging.decode import load_image
from modelstore.loader import PublishedModel
from modelstore.split_loader import LoadedBase
from service import predictor as predictor_module
from service.app import create_app
from service.middleware import BodyLimitMiddleware
from tests.conftest import encode
from tests.service.conftest import SIZE, files, make_settings


def assert_error(response, status: int, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    for word in words:
        assert word in body["error"]


@pytest.fixture
def still_serves(client: TestClient, png: bytes):  # type: ignore[no-untyped-def]
    """After each error test, a valid request is still answered correctly."""
    expected = client.post("/predict", content=png).json()
    yield
    after = client.post("/predict", content=png)
    assert after.status_code == 200 and after.json() == expected


pytestmark = pytest.mark.usefixtures("still_serves")


@dataclass
class ModelCalls:
    """What `model_calls` tells every model call of apps made in the test to do."""

    watch: bool = False  # record every call's pictures in `batches`
    hold: bool = False  # block until `release` is set
    fail: bool = False  # raise, like a model that fails at run time
    error: BaseException | None = None  # raise this instead of answering (while set)
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    batches: list[list[bytes]] = field(default_factory=list)  # each picture's bytes


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelCalls]:
    """Hold or fail the real model's calls on request; warm-up and normal calls run as is.

    A model call is a whole model's `predict`, or a shared base's `features` (the
    pictures' pass through the base that its versions' heads then read).
    """
    calls = ModelCalls()
    real_whole, real_base = PublishedModel.predict, LoadedBase.features

    def predict(self: PublishedModel | LoadedBase, pictures: np.ndarray) -> np.ndarray:
        if calls.watch:
            calls.batches.append([picture.tobytes() for picture in pictures])
        if calls.fail:
            raise RuntimeError("the model call failed")
        if calls.error is not None:
            raise calls.error
        if calls.hold:
            calls.entered.set()
            calls.release.wait(60)
        if isinstance(self, LoadedBase):
            return real_base(self, pictures)
        return real_whole(self, pictures)

    # Patched on the classes before an app loads its model: the batcher keeps the method.
    monkeypatch.setattr(PublishedModel, "predict", predict)
    monkeypatch.setattr(LoadedBase, "features", predict)
    yield calls
    calls.release.set()  # never leave a worker thread blocked


def test_error_not_an_image_is_415(client: TestClient) -> None:
    # Named like a JPEG, declared as one: content decides.
    response = client.post("/predict", files=[("file", ("cat.jpg", b"hello, world", "image/jpeg"))])
    assert_error(response, 415, "cat.jpg", "not a supported image")


def test_error_json_to_predict_is_415(client: TestClient) -> None:
    assert_error(client.post("/predict", json={"a": 1}), 415)


def test_error_truncated_image_is_422(client: TestClient, jpeg: bytes) -> None:
    assert_error(client.post("/predict", content=jpeg[: len(jpeg) // 2]), 422)


def test_error_too_many_pixels_is_413(client: TestClient) -> None:
    big = encode(np.zeros((1100, 1000, 3), np.uint8), "PNG")  # 1.1 MP > the 1 MP test limit
    assert_error(client.post("/predict", content=big), 413, "pixels")


def test_error_body_too_large_is_413(client: TestClient) -> None:
    assert_error(client.post("/predict", content=b"\0" * 200_001), 413, "200000 bytes")


def test_error_streamed_body_too_large_is_413(client: TestClient) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(30):
            yield b"\0" * 10_000  # no Content-Length: chunked transfer

    assert_error(client.post("/predict", content=chunks()), 413)


def test_error_declared_body_too_large_is_413_before_reading_it() -> None:
    # A client that announces 10 GB is refused from its headers alone: not one byte of
    # the body is read (nor buffered), and no route runs.
    received: list[Any] = []

    async def receive() -> dict[str, Any]:
        received.append(1)
        return {"type": "http.request", "body": b"x", "more_body": False}

    async def route(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(b"content-length", str(10 * 1024**3).encode())],
    }
    asyncio.run(BodyLimitMiddleware(route, max_bytes=200_000)(scope, receive, send))
    assert received == []
    assert sent[0]["status"] == 413
    body = json.loads(sent[1]["body"])
    assert body["status"] == 413 and "200000 bytes" in body["error"]


def test_error_too_many_images_is_413(client: TestClient, png: bytes) -> None:
    response = client.post("/predict", files=files(*[(f"{i}.png", png) for i in range(5)]))
    assert_error(response, 413, "4")
    many = client.post("/predict", files=files(*[(f"{i}.png", png) for i in range(9)]))
    assert_error(many, 413)


def test_error_empty_and_missing_images_are_400(client: TestClient) -> None:
    assert_error(client.post("/predict", content=b""), 400)
    assert_error(client.post("/predict", files={"other": ("a.txt", b"x")}), 400, "file")


def test_error_unknown_model_is_404(client: TestClient, png: bytes) -> None:
    assert_error(client.post("/predict?model=nope", content=png), 404, "nope", "car_truck")
    assert_error(client.get("/v1/models/nope"), 404)
    assert_error(client.get("/no/such/endpoint"), 404)


def test_error_malformed_json_is_400(client: TestClient) -> None:
    headers = {"Content-Type": "application/json"}
    assert_error(client.post("/v1/models/car_truck:predict", content=b"{", headers=headers), 400)
    assert_error(client.post("/decode_predictions", content=b"[1,", headers=headers), 400)
    assert_error(client.post("/v1/models/car_truck:predict", json={"foo": 1}), 400, "instances")
    assert_error(
        client.post("/v1/models/car_truck/versions/x:predict", json={"instances": []}), 400
    )


def test_error_bad_base64_is_400(client: TestClient) -> None:
    response = client.post("/v1/models/car_truck:predict", json={"instances": [{"b64": "@@@"}]})
    assert_error(response, 400, "base64")


def test_error_b64_of_non_image_is_415(client: TestClient) -> None:
    text = base64.b64encode(b"plain text").decode()
    response = client.post("/v1/models/car_truck:predict", json={"instances": [{"b64": text}]})
    assert_error(response, 415)


def test_error_bad_scores_are_422(client: TestClient) -> None:
    assert_error(
        client.post("/decode_predictions", json={"predictions": [[0.5, 0.3, 0.2]]}), 422, "3"
    )
    assert_error(client.post("/decode_predictions", json={"predictions": [["a", 1]]}), 422)
    nan = b'{"predictions": [[NaN, 1.0]]}'
    response = client.post(
        "/decode_predictions", content=nan, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422)


def test_error_bad_query_parameter_is_400(client: TestClient, png: bytes) -> None:
    assert_error(client.post("/decode_predictions?top=zero", content=png), 400, "top")
    assert_error(client.post("/decode_predictions?top=0", content=png), 400, "top")


def test_error_queue_full_is_503_with_retry_after(fresh_dir: Path, png: bytes) -> None:
    # A long batch delay keeps the first request queued; a queue of one image is then full.
    settings = make_settings(fresh_dir, max_queue=1, max_batch_delay_ms=1500)
    with (
        TestClient(create_app(settings)) as test_client,
        concurrent.futures.ThreadPoolExecutor(4) as pool,
    ):
        futures = [pool.submit(test_client.post, "/predict", content=png) for _ in range(4)]
        responses = [future.result() for future in futures]
    statuses = sorted(response.status_code for response in responses)
    assert statuses[0] == 200  # the one that got the queue's only place is answered
    refused = [response for response in responses if response.status_code != 200]
    assert refused
    for response in refused:
        assert_error(response, 503, "full")
        assert response.headers["Retry-After"] == "1"


def test_error_slow_inference_is_504(fresh_dir: Path, png: bytes, model_calls: ModelCalls) -> None:
    # A budget that decoding one small PNG never uses up, and a model call that outlasts it.
    settings = make_settings(fresh_dir, request_timeout_s=2)
    with TestClient(create_app(settings)) as test_client:
        model_calls.hold = True
        assert_error(test_client.post("/predict", content=png), 504, "did not answer")
        model_calls.hold = False
        model_calls.release.set()
        assert test_client.post("/predict", content=png).status_code == 200


def test_error_timed_out_request_is_skipped_by_the_worker(
    fresh_dir: Path, png: bytes, jpeg: bytes, model_calls: ModelCalls
) -> None:
    settings = make_settings(fresh_dir, request_timeout_s=2, batch_sizes="")
    with (
        TestClient(create_app(settings)) as test_client,
        concurrent.futures.ThreadPoolExecutor(2) as pool,
    ):
        model_calls.watch = model_calls.hold = True
        running = pool.submit(test_client.post, "/predict", content=png)
        assert model_calls.entered.wait(30)  # the worker is inside the model with it
        queued = pool.submit(test_client.post, "/predict", content=jpeg)  # waits behind it
        # Both time out in the batcher (not in decoding: the message says which).
        assert_error(running.result(), 504, "did not answer")
        assert_error(queued.result(), 504, "did not answer")
        model_calls.hold = False
        model_calls.release.set()
        assert test_client.post("/predict", content=png).status_code == 200
    # The model ran the first request and the last; the queued one was dropped unrun.
    names = {
        load_image(data, SIZE).tobytes(): name for name, data in (("png", png), ("jpeg", jpeg))
    }
    ran = [[names.get(picture, "?") for picture in batch] for batch in model_calls.batches]
    assert ran == [["png"], ["png"]]


def test_error_failing_model_call_is_500_and_later_requests_succeed(
    fresh_dir: Path, png: bytes, model_calls: ModelCalls
) -> None:
    settings = make_settings(fresh_dir, request_timeout_s=10)
    with (
        # The 500 is answered; the test client would raise the exception as well.
        TestClient(create_app(settings), raise_server_exceptions=False) as test_client,
        concurrent.futures.ThreadPoolExecutor(2) as pool,
    ):
        expected = test_client.post("/predict", content=png).json()
        model_calls.watch = model_calls.fail = True
        failed = list(pool.map(lambda _: test_client.post("/predict", content=png), range(2)))
        model_calls.fail = False
        later = [test_client.post("/predict", content=png) for _ in range(2)]
    assert model_calls.batches  # the failing calls did happen
    for response in failed:
        assert_error(response, 500, "RuntimeError")
    for response in later:
        assert response.status_code == 200 and response.json() == expected


def test_error_decode_queue_full_is_503_with_retry_after(
    fresh_dir: Path, png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered = threading.Event()
    release = threading.Event()
    real = predictor_module.load_image

    def first_held(data: bytes, size: int, **kwargs: Any) -> np.ndarray:
        if not entered.is_set():  # hold the first decode only
            entered.set()
            release.wait(30)
        return real(data, size, **kwargs)

    monkeypatch.setattr(predictor_module, "load_image", first_held)
    settings = make_settings(fresh_dir, max_decode_queue=1)
    with (
        TestClient(create_app(settings)) as test_client,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        decoding = pool.submit(test_client.post, "/predict", content=png)
        assert entered.wait(30)  # one image in the decode queue: it is full
        refused = test_client.post("/predict", content=png)
        release.set()
        assert decoding.result().status_code == 200
    assert_error(refused, 503, "decode queue is full")
    assert refused.headers["Retry-After"] == "1"


def test_error_scores_too_large_for_float_are_422(client: TestClient) -> None:
    body = b'{"predictions": [[1' + b"0" * 400 + b", 0]]}"
    response = client.post(
        "/decode_predictions", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422, "too large")


def test_error_too_many_score_rows_is_413(client: TestClient) -> None:
    rows = [[0.5, 0.5]] * 5  # the test settings allow 4 images (rows) per request
    assert_error(client.post("/decode_predictions", json={"predictions": rows}), 413, "5 rows")


def test_error_too_many_malformed_score_rows_is_422_not_413(client: TestClient) -> None:
    # The body breaks the documented schema (rows of numbers): a 422 whatever its length,
    # so a schema-violating request is never answered as merely too large.
    rows = [[[0.5], 0.5]] * 5
    assert_error(client.post("/decode_predictions", json={"predictions": rows}), 422, "numbers")


def test_error_non_ascii_digit_version_is_400(client: TestClient) -> None:
    assert_error(client.get("/v1/models/car_truck/versions/%C2%B2"), 400, "version", "integer")


def test_error_slow_decoding_is_504(fresh_dir: Path) -> None:
    big = encode(np.zeros((4000, 4000, 3), np.uint8), "PNG")  # ~0.3 s to decode
    settings = make_settings(fresh_dir, request_timeout_s=0.01, max_image_pixels=20_000_000)
    with TestClient(create_app(settings)) as test_client:
        assert_error(test_client.post("/predict", content=big), 504, "decoding")


def test_error_unexpected_is_500_logged_once(
    fresh_dir: Path, png: bytes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The TestClient re-raises any exception that leaves the app: under uvicorn that
    # exception is what made the same traceback appear twice in the log.
    app = create_app(make_settings(fresh_dir))
    with TestClient(app) as test_client:

        async def broken(*args: object) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(app.state.service.predictor, "predict_images", broken)
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            response = test_client.post("/predict", content=png)
    assert_error(response, 500, "RuntimeError", "server log")
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == 1
    assert "boom" in str(tracebacks[0].exc_info[1])  # type: ignore[index]


def test_error_out_of_memory_is_503_with_retry_after_and_later_requests_succeed(
    fresh_dir: Path, png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MemoryError says the process was short of memory, not that the input is bad.
    real = predictor_module.load_image
    calls = []

    def first_fails(data: bytes, size: int, **kwargs: Any) -> np.ndarray:
        calls.append(size)
        if len(calls) == 1:
            raise MemoryError
        return real(data, size, **kwargs)

    monkeypatch.setattr(predictor_module, "load_image", first_fails)
    with TestClient(create_app(make_settings(fresh_dir))) as test_client:
        failed = test_client.post("/predict", content=png)
        later = test_client.post("/predict", content=png)
    assert_error(failed, 503, "out of memory", "retry")
    assert failed.headers["Retry-After"] == "5"
    assert later.status_code == 200 and later.json()["predictions"]


def test_error_out_of_memory_in_the_model_call_is_503_through_the_batcher(
    fresh_dir: Path, png: bytes, model_calls: ModelCalls
) -> None:
    # The batcher's worker thread hands the MemoryError to the request's future: it must
    # reach the error middleware as itself, not as some other error (500).
    with TestClient(create_app(make_settings(fresh_dir))) as test_client:
        model_calls.watch, model_calls.error = True, MemoryError()
        failed = test_client.post("/predict", content=png)
        model_calls.error = None
        later = test_client.post("/predict", content=png)
    assert model_calls.batches  # the model call did fail
    assert_error(failed, 503, "out of memory", "retry")
    assert failed.headers["Retry-After"] == "5"
    assert later.status_code == 200


def test_error_tensorflow_out_of_memory_is_503_with_retry_after(
    fresh_dir: Path, png: bytes
) -> None:
    # TensorFlow's allocators (GPU, and CPU too) report running out of memory as
    # ResourceExhaustedError, never MemoryError: the model call's real out-of-memory.
    import tensorflow as tf

    app = create_app(make_settings(fresh_dir))
    with TestClient(app) as test_client:
        model = app.state.service.repository.get("car_truck").model
        real, calls = model._fn, []

        def exhausted(**inputs: Any) -> Any:
            calls.append(inputs)
            if len(calls) == 1:
                raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
            return real(**inputs)

        model._fn = exhausted
        failed = test_client.post("/predict", content=png)
        later = test_client.post("/predict", content=png)
    assert_error(failed, 503, "out of memory", "retry")
    assert failed.headers["Retry-After"] == "5"
    assert later.status_code == 200 and len(calls) == 2


def test_error_out_of_memory_while_buffering_the_body_is_503_and_counted_as_such(
    fresh_dir: Path, png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The body cap joins up to max_request_bytes into one buffer before any route runs:
    # a MemoryError there must get the same JSON 503, and the metrics must count a 503.
    from service.middleware import BodyLimitMiddleware

    real = BodyLimitMiddleware.__call__
    failures = [MemoryError()]

    async def short_of_memory(
        self: BodyLimitMiddleware, scope: Any, receive: Any, send: Any
    ) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and failures:
            raise failures.pop()
        await real(self, scope, receive, send)

    monkeypatch.setattr(BodyLimitMiddleware, "__call__", short_of_memory)
    with TestClient(
        create_app(make_settings(fresh_dir)), raise_server_exceptions=False
    ) as test_client:
        failed = test_client.post("/predict", content=png)
        later = test_client.post("/predict", content=png)
        metrics = test_client.get("/metrics").text
    assert_error(failed, 503, "out of memory", "retry")
    assert failed.headers["Retry-After"] == "5"
    assert later.status_code == 200
    # Refused before routing, like the body cap's 413: no route to label it with.
    assert 'vggsvc_requests_total{endpoint="unmatched",model="",status="503"} 1.0' in metrics
