"""Every bad input gets its status and a JSON message; the service keeps answering."""

from __future__ import annotations

import base64
import concurrent.futures
import logging
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.conftest import encode
from tests.service.conftest import files, make_settings


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


def test_error_slow_inference_is_504(fresh_dir: Path, png: bytes) -> None:
    settings = make_settings(fresh_dir, request_timeout_s=0.05, max_batch_delay_ms=1000)
    with TestClient(create_app(settings)) as test_client:
        assert_error(test_client.post("/predict", content=png), 504, "did not answer")


def test_error_scores_too_large_for_float_are_422(client: TestClient) -> None:
    body = b'{"predictions": [[1' + b"0" * 400 + b", 0]]}"
    response = client.post(
        "/decode_predictions", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422, "too large")


def test_error_too_many_score_rows_is_413(client: TestClient) -> None:
    rows = [[0.5, 0.5]] * 5  # the test settings allow 4 images (rows) per request
    assert_error(client.post("/decode_predictions", json={"predictions": rows}), 413, "5 rows")


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
