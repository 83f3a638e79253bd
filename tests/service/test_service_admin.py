"""POST /admin/reload: disabled without a key, 401 with a wrong one, reloads with the right one."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from service.app import create_app
from tests.service.conftest import make_settings, publish_copy


def test_admin_without_configured_key_is_403(client: TestClient) -> None:
    response = client.post("/admin/reload", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 403
    assert response.json() == {
        "error": "admin endpoints are disabled; set VGGSVC_ADMIN_KEY to enable them",
        "status": 403,
    }


def test_admin_wrong_or_missing_key_is_401_and_right_key_reloads(
    fresh_dir: Path, model_store: Path, png: bytes
) -> None:
    with TestClient(create_app(make_settings(fresh_dir, admin_key="s3cret"))) as client:
        publish_copy(model_store, fresh_dir, "car_truck", 2, 2)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            response = client.post("/admin/reload", headers=headers)
            assert response.status_code == 401
            assert "admin key" in response.json()["error"]
            assert response.headers["WWW-Authenticate"] == "Bearer"
        # The poller is off in tests: nothing changed yet.
        assert client.post("/predict", content=png).headers["X-Model-Version"] == "1"
        response = client.post("/admin/reload", headers={"Authorization": "Bearer s3cret"})
        assert response.status_code == 200
        assert response.json() == {"loaded": {"car_truck": [2]}, "failures": {}}
        assert client.post("/predict", content=png).headers["X-Model-Version"] == "2"
