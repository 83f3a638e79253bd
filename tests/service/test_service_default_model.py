"""With no default model configured, the only model served answers; several need a choice."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from service.app import create_app
from tests.service.conftest import make_settings


def test_default_model_unset_one_model_served_is_the_default(fresh_dir: Path, png: bytes) -> None:
    assert sorted(p.name for p in fresh_dir.iterdir()) == ["car_truck"]
    with TestClient(create_app(make_settings(fresh_dir, default_model=None))) as client:
        assert client.get("/readyz").status_code == 200
        assert client.get("/models").json()["default_model"] == "car_truck"
        response = client.post("/predict", content=png)
        assert response.status_code == 200, response.text
        assert response.json()["model"] == "car_truck"


def test_default_model_unset_several_models_need_a_choice(models_dir: Path, png: bytes) -> None:
    with TestClient(create_app(make_settings(models_dir, default_model=None))) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "several models (car_truck, vgg16_imagenet) and no default model" in ready.text
        assert "VGGSVC_DEFAULT_MODEL" in ready.text
        assert client.get("/models").json()["default_model"] is None
        unnamed = client.post("/predict", content=png)
        assert unnamed.status_code == 400
        assert "name one with ?model=NAME" in unnamed.json()["error"]
        named = client.post("/predict?model=car_truck", content=png)
        assert named.status_code == 200 and named.json()["model"] == "car_truck"
