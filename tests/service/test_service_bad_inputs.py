"""The bad-input corpus over every route and both kinds of model: exact status, JSON error body.

Each case of `bench/support/bad_inputs.py` goes to every route it applies to
(multipart and raw `/predict`, multipart `/decode_predictions`, TF Serving
`:predict` with `{"b64": ...}`, and the JSON forms), once for the fine-tuned
`car_truck` and once for the 1000-class `vgg16_imagenet` stand-in. A case
expected to be answered is checked for a well-formed prediction; every other
case for its status and `{"error": "...", "status": N}`. After each case the
same app still answers a normal request with the same scores.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import service.middleware
from bench.support.bad_inputs import BadInput, cases
from service.app import create_app
from tests.service.conftest import LABELS, make_settings

MODELS = ("car_truck", "vgg16_imagenet")
TOP = 3


def send(client: TestClient, route: str, case: BadInput, model: str) -> httpx.Response:
    """POST the case's body the way `route` takes it."""
    body = case.payload(len(LABELS) if model == "car_truck" else 1000)
    if route == "predict_multipart":
        files = [("file", (f"{case.name}.bin", body, case.content_type))]
        return client.post(f"/predict?model={model}", files=files)
    if route == "predict_raw":
        return client.post(
            f"/predict?model={model}", content=body, headers={"Content-Type": case.content_type}
        )
    if route == "decode_predictions":
        files = [("file", (f"{case.name}.bin", body, case.content_type))]
        return client.post(f"/decode_predictions?model={model}&top={TOP}", files=files)
    if route == "tfserving_b64":
        instance = {"b64": base64.b64encode(body).decode()}
        return client.post(f"/v1/models/{model}:predict", json={"instances": [instance]})
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if route == "decode_predictions_json":
        return client.post(f"/decode_predictions?model={model}&top=1", content=raw, headers=headers)
    assert route == "tfserving_json", route
    return client.post(f"/v1/models/{model}:predict", content=raw, headers=headers)


def check_answer(response: httpx.Response, route: str, model: str) -> None:
    """A 200 answer is a well-formed prediction of `model` for one image."""
    width = len(LABELS) if model == "car_truck" else 1000
    body = response.json()
    if route == "tfserving_b64":
        (row,) = body["predictions"]
        assert len(row) == width and abs(sum(row) - 1) < 1e-3
        return
    assert (body["model"], body["version"]) == (model, 1)
    (prediction,) = body["predictions"]
    scores = [c["score"] for c in prediction["classes"]]
    assert len(scores) == (min(TOP, width) if route == "decode_predictions" else width)
    assert scores == sorted(scores, reverse=True)
    if route != "decode_predictions":
        assert abs(sum(scores) - 1) < 1e-3


def _params() -> list[Any]:
    params = []
    for case in cases():
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        for route in case.routes:
            for model in MODELS:
                params.append(
                    pytest.param(case, route, model, id=f"{case.name}-{route}-{model}", marks=marks)
                )
    return params


@pytest.fixture(scope="module")
def normal_answer(client: TestClient, png: bytes) -> dict[str, Any]:
    response = client.post("/predict", content=png)
    assert response.status_code == 200
    return dict(response.json())


@pytest.mark.parametrize(("case", "route", "model"), _params())
def test_bad_input_gets_documented_answer(
    client: TestClient,
    png: bytes,
    normal_answer: dict[str, Any],
    case: BadInput,
    route: str,
    model: str,
) -> None:
    status, fragment = case.expected(route)
    response = send(client, route, case, model)
    assert response.status_code == status, response.text[:500]
    if status == 200:
        check_answer(response, route, model)
    else:
        body = response.json()
        assert set(body) == {"error", "status"}, body
        assert body["status"] == status
        assert isinstance(body["error"], str) and body["error"]
        assert fragment is not None and fragment in body["error"], body["error"]
    # The service is unharmed: a normal request gets the very same answer.
    after = client.post("/predict", content=png)
    assert after.status_code == 200 and after.json() == normal_answer


def test_large_body_returns_memory_to_the_os_after_the_request(
    fresh_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(service.middleware, "release_free_memory", lambda: calls.append(1))
    settings = make_settings(fresh_dir, max_request_bytes=4_000_000)
    with TestClient(create_app(settings)) as test_client:
        small = test_client.post("/decode_predictions", json={"predictions": [[0.5, 0.5]]})
        assert small.status_code == 200 and calls == []
        # A legal 1.5 MB body: the copies the service made of it are given back afterwards.
        rows = {"predictions": [[0.5] * 300_000]}
        assert test_client.post("/decode_predictions", json=rows).status_code == 422
        assert calls == [1]
