"""The service with int8 versions: reported, measured by precision, refused when asked for
on a version that cannot run it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import modelstore.runtime
from bench.support.harness import export_tiny
from modelstore.runtime import configure_runtime
from service.app import create_app
from tests.service.conftest import LABELS, SIZE, files, make_settings
from tests.support.int8_models import publish_int8_tiny
from training.demo_data import generate

VNNI = {"avx512f", "avx512_bf16", "avx512_vnni"}


@pytest.fixture(scope="module")
def int8_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """car_truck/1 with an int8 artifact; plain/1 without one."""
    photos = tmp_path_factory.mktemp("photos") / "data"
    generate(photos, train=6, valid=4, size=SIZE, seed=0)
    root = tmp_path_factory.mktemp("int8-models")
    publish_int8_tiny(root, photos)
    export_tiny(root, "plain", LABELS, SIZE, seed=2)
    return root


@pytest.fixture
def vnni_cpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(modelstore.runtime, "cpu_flags", lambda: VNNI)
    yield
    configure_runtime("fp32")  # other tests' apps set their own; leave the process as found


def test_service_int8_auto_serves_int8_and_reports_it(
    int8_models: Path, vnni_cpu: None, png: bytes
) -> None:
    with TestClient(create_app(make_settings(int8_models, precision="auto"))) as client:
        response = client.post("/predict?model=car_truck", files=files(("a.png", png)))
        assert response.status_code == 200, response.text
        models = {m["name"]: m for m in client.get("/models").json()["models"]}
        # int8 for the version that has it; the other falls back to the TF precision.
        assert models["car_truck"]["precision"] == "int8"
        assert models["plain"]["precision"] in ("bf16", "fp32")
        v1 = client.get("/v1/models/car_truck").json()
        assert v1["model_version_status"][0]["precision"] == "int8"
        v2 = client.get("/v2/models/car_truck").json()
        assert v2["parameters"]["precision"] == "int8"
        metrics = client.get("/metrics").text
        counted = re.search(
            r'vggsvc_inference_duration_seconds_count\{model="car_truck",precision="int8",'
            r'version="1"\} ([0-9.]+)',
            metrics,
        )
        assert counted is not None and float(counted[1]) >= 1


def test_service_int8_explicit_refuses_a_version_without_artifact(
    int8_models: Path, vnni_cpu: None, png: bytes
) -> None:
    with TestClient(create_app(make_settings(int8_models, precision="int8"))) as client:
        assert (
            client.post("/predict?model=car_truck", files=files(("a.png", png))).status_code == 200
        )
        status = client.get("/v1/models/plain").json()["model_version_status"][0]
        assert status["state"] == "END"
        assert "cannot run in int8" in status["status"]["error_message"]
        refused = client.post("/predict?model=plain", files=files(("a.png", png)))
        assert refused.status_code == 409
        assert "cannot run in int8" in refused.json()["error"]
