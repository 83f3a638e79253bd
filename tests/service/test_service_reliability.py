"""Hostile requests against the app: strict versions, one meaning per query parameter,
secrets kept out of the access log, probes that never wait behind admin work, decode
bombs refused, and a model repository that reports odd folders once.

Connection-level attacks (idle, slow, too many clients) are in
test_service_connections.py; the long variant of all of them is marked slow.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bench.support.decode_bombs import jpeg_scan_bomb, webp_canvas_bomb
from imaging.decode_cost import MAX_JPEG_SCANS
from service.app import create_app
from service.logs import RedactSecretsFilter
from tests.service.conftest import files, make_settings

NOT_VERSIONS = ("1.0", "+1", "%201", "01", "0", "1e0", "0x1")


@pytest.mark.parametrize("text", NOT_VERSIONS)
def test_version_that_is_not_a_canonical_integer_is_400_on_every_protocol(
    client: TestClient, png: bytes, text: str
) -> None:
    answers = [
        client.post(f"/v1/models/car_truck/versions/{text}:predict", json={"instances": []}),
        client.get(f"/v1/models/car_truck/versions/{text}"),
        client.get(f"/v1/models/car_truck/versions/{text}/metadata"),
        client.get(f"/v2/models/car_truck/versions/{text}"),
        client.get(f"/v2/models/car_truck/versions/{text}/ready"),
    ]
    for response in answers:
        assert response.status_code == 400, (response.request.url, response.text)
        assert "positive integer" in response.json()["error"]


def test_canonical_version_still_answers(client: TestClient) -> None:
    assert client.get("/v1/models/car_truck/versions/1").status_code == 200
    assert client.get("/v2/models/car_truck/versions/1/ready").status_code == 200


@pytest.mark.parametrize("query", ["model=car_truck&model=vgg16_imagenet", "top=1&top=2"])
def test_repeated_query_parameter_is_400(client: TestClient, png: bytes, query: str) -> None:
    for route in ("/predict", "/decode_predictions"):
        response = client.post(f"{route}?{query}", files=files(("a.png", png)))
        assert response.status_code == 400
        assert "more than once" in response.json()["error"]


def test_decode_bombs_are_413_and_the_service_keeps_serving(client: TestClient, png: bytes) -> None:
    scans = client.post("/predict", content=jpeg_scan_bomb(300, MAX_JPEG_SCANS))
    assert scans.status_code == 413 and "progressive scans" in scans.json()["error"]
    canvas = client.post("/predict", content=webp_canvas_bomb(6000))
    assert canvas.status_code == 413 and "6000x6000" in canvas.json()["error"]
    assert client.post("/predict", content=png).status_code == 200


def test_access_log_redacts_secrets_in_the_query_string() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "POST", "/admin/reload?key=s3cret&model=car_truck&api_token=t0k", "1.1", 401),
        None,
    )
    assert RedactSecretsFilter().filter(record)
    line = record.getMessage()
    assert "s3cret" not in line and "t0k" not in line
    assert "key=REDACTED&model=car_truck&api_token=REDACTED" in line


def test_metrics_and_probes_answer_while_admin_reloads_are_stuck(fresh_dir: Path) -> None:
    with TestClient(create_app(make_settings(fresh_dir, admin_key="k"))) as client:
        repo = client.app.state.service.repository  # type: ignore[attr-defined]
        release = threading.Event()
        original = repo.reload

        def stuck_reload() -> dict[str, list[int]]:
            release.wait(30)
            return original()

        repo.reload = stuck_reload
        auth = {"Authorization": "Bearer k"}
        reloads = [
            threading.Thread(target=client.post, args=("/admin/reload",), kwargs={"headers": auth})
            for _ in range(8)  # more than the loop's default pool (6 threads on 2 cores)
        ]
        for thread in reloads:
            thread.start()
        try:
            time.sleep(0.5)
            began = time.monotonic()
            for probe in ("/metrics", "/healthz", "/readyz"):
                assert client.get(probe).status_code == 200
            assert time.monotonic() - began < 5.0
        finally:
            release.set()
            for thread in reloads:
                thread.join(30)


def test_odd_version_folders_are_reported_once_and_deleted_failures_dropped(
    fresh_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model_dir = fresh_dir / "car_truck"
    shutil.copytree(model_dir / "1", model_dir / "092")
    (model_dir / "3").mkdir()
    (model_dir / "3" / "metadata.json").mkdir()  # a directory where the file belongs
    with (
        caplog.at_level(logging.INFO, logger="service.repository"),
        TestClient(create_app(make_settings(fresh_dir))) as client,
    ):
        repo = client.app.state.service.repository  # type: ignore[attr-defined]
        for _ in range(3):
            assert repo.reload() == {"car_truck": [1]}
        assert "metadata.json is not a file" in repo.failures[("car_truck", 3)]
        states = client.get("/v1/models/car_truck").json()["model_version_status"]
        assert any(s["version"] == "3" for s in states)
        shutil.rmtree(model_dir / "3")
        repo.reload()
        assert repo.failures == {}
        states = client.get("/v1/models/car_truck").json()["model_version_status"]
        assert [s["version"] for s in states] == ["1"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("092" in m for m in messages) == 1
    assert sum("version 3" in m for m in messages) == 1
