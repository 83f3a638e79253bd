"""JSON bodies and HTTP framing: bounded, parsed off the event loop, documented, never a 500."""

from __future__ import annotations

import base64
import concurrent.futures
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import service.predictor
from service.app import create_app
from tests.service.conftest import make_settings
from tests.service.test_service_errors import assert_error

JSON = {"Content-Type": "application/json"}
DEEP = b"[" * 10_000 + b"]" * 10_000  # 20 KB


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/decode_predictions", b'{"predictions": ' + DEEP + b"}"),
        ("/v1/models/car_truck:predict", b'{"instances": ' + DEEP + b"}"),
        ("/v1/models/car_truck:predict", DEEP),
    ],
)
def test_json_nested_too_deep_is_400(
    client: TestClient, png: bytes, path: str, body: bytes
) -> None:
    assert_error(client.post(path, content=body, headers=JSON), 400, "nested")
    assert client.post("/predict", content=png).status_code == 200


def test_json_nested_under_the_limit_but_wrong_is_4xx_not_500(client: TestClient) -> None:
    body = b'{"instances": ' + b"[" * 1000 + b"1" + b"]" * 1000 + b"}"
    assert_error(client.post("/v1/models/car_truck:predict", content=body, headers=JSON), 422)
    body = b'{"predictions": ' + b"[" * 1000 + b"1" + b"]" * 1000 + b"}"
    assert_error(client.post("/decode_predictions", content=body, headers=JSON), 422)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b'{"predictions": [[1e400, 0.1]]}', 422, ("too large",)),
        (b'{"predictions": [[Infinity, 0.1]]}', 422, ("Infinity",)),
        (b'{"predictions": [[-Infinity, 0.1]]}', 422, ("Infinity",)),
        (b'{"predictions": [[0.5, 0.5]]} trailing', 400, ("not valid JSON",)),
        (b"", 400, ("empty",)),
    ],
)
def test_json_numbers_and_syntax_errors_are_clear(
    client: TestClient, body: bytes, status: int, words: tuple[str, ...]
) -> None:
    assert_error(client.post("/decode_predictions", content=body, headers=JSON), status, *words)


def test_json_body_is_parsed_off_the_event_loop(
    fresh_dir: Path, png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one JSON body is being parsed, /healthz still answers (the loop is free)."""
    entered, release = threading.Event(), threading.Event()
    real_parse = service.predictor.parse_json

    def slow_parse(body: bytes) -> object:
        entered.set()
        assert release.wait(30), "never released"
        return real_parse(body)

    monkeypatch.setattr(service.predictor, "parse_json", slow_parse)
    body = {"instances": [{"b64": base64.b64encode(png).decode()}]}
    with (
        TestClient(create_app(make_settings(fresh_dir))) as client,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        pending = pool.submit(client.post, "/v1/models/car_truck:predict", json=body)
        assert entered.wait(30), "the body was never parsed"
        try:
            health = client.get("/healthz")  # would block here if parsing held the loop
            assert health.status_code == 200
            assert not pending.done()
        finally:
            release.set()
        assert pending.result(timeout=60).status_code == 200


def test_content_length_with_transfer_encoding_is_400(client: TestClient, png: bytes) -> None:
    response = client.post(
        "/predict",
        content=png,
        headers={"Content-Length": str(len(png)), "Transfer-Encoding": "chunked"},
    )
    assert_error(response, 400, "Content-Length", "Transfer-Encoding")
    assert client.post("/predict", content=png).status_code == 200


@pytest.mark.parametrize(
    "path", ["/v1/models/car_truck:predict", "/v1/models/car_truck/versions/1:predict"]
)
def test_get_on_tfserving_predict_is_405(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert_error(response, 405, "POST")
    assert response.headers["Allow"] == "POST"


def test_openapi_documents_json_bodies_versions_and_admin_key(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/v1/models/{name}:predict", "/v1/models/{name}/versions/{version}:predict"):
        body = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert {"instances", "inputs"} <= set(body["properties"])
    decode = paths["/decode_predictions"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/octet-stream", "application/json"} <= set(decode)
    assert decode["application/json"]["schema"]["required"] == ["predictions"]
    (version,) = [
        p
        for p in paths["/v1/models/{name}/versions/{version}"]["get"]["parameters"]
        if p["name"] == "version"
    ]
    assert version["schema"]["type"] == "integer"
    assert "{name}:predict" not in str(paths.get("/v1/models/{name}:predict", {}).get("get"))
    schemes = spec["components"]["securitySchemes"]
    assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    assert paths["/admin/reload"]["post"]["security"]
