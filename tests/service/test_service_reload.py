"""Hot reload: new versions swap in without a failed request; broken ones are skipped."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.repository import ModelRepository
from tests.service.conftest import make_settings, publish_copy, wait_for


def publish_broken(models_dir: Path, store: Path, version: int) -> None:
    """A complete-looking version whose SavedModel is garbage from the moment it appears.

    Broken before the rename: a poller that saw the good copy first would load it.
    """
    tmp = models_dir / "car_truck" / f".tmp-broken-{version}"
    shutil.copytree(store / "car_truck" / "2", tmp)
    (tmp / "saved_model.pb").write_bytes(b"this is not a protobuf")
    tmp.rename(models_dir / "car_truck" / str(version))


def failures_metric(client: TestClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('vggsvc_model_load_failures_total{model="car_truck"}'):
            return float(line.split()[-1])
    return 0.0


def test_reload_switches_to_new_version_without_failed_requests(
    fresh_dir: Path, model_store: Path, png: bytes
) -> None:
    settings = make_settings(fresh_dir, poll_interval_s=0.2)
    statuses: list[int] = []
    versions: list[str] = []
    stop = threading.Event()
    with TestClient(create_app(settings)) as client:

        def hammer() -> None:
            while not stop.is_set():
                response = client.post("/predict", content=png)
                statuses.append(response.status_code)
                versions.append(response.headers.get("X-Model-Version", "?"))

        worker = threading.Thread(target=hammer)
        worker.start()
        try:
            assert wait_for(lambda: len(versions) >= 3)
            publish_copy(model_store, fresh_dir, "car_truck", 2, 2)
            assert wait_for(lambda: versions[-1:] == ["2"]), "never switched to version 2"
            count = len(versions)
            assert wait_for(lambda: len(versions) >= count + 3)
        finally:
            stop.set()
            worker.join()
        assert set(statuses) == {200}
        assert versions[0] == "1" and versions[-1] == "2"
        # Once switched, never back: the swap is atomic.
        assert "1" not in versions[versions.index("2") :]
        repo = client.app.state.service.repository  # type: ignore[attr-defined]
        assert wait_for(lambda: [m.version for m in repo.versions("car_truck")] == [2])

        # A broken version 3 is logged, counted and skipped; 2 keeps serving.
        before = failures_metric(client)
        publish_broken(fresh_dir, model_store, 3)
        # The metric is counted last, after the reason is recorded: wait for it.
        assert wait_for(lambda: failures_metric(client) == before + 1)
        assert "SavedModel" in repo.failures[("car_truck", 3)]
        response = client.post("/predict", content=png)
        assert response.status_code == 200 and response.headers["X-Model-Version"] == "2"
        assert client.get("/readyz").status_code == 200


def test_reload_old_version_released_after_in_flight_requests(
    fresh_dir: Path, model_store: Path, png: bytes
) -> None:
    with TestClient(create_app(make_settings(fresh_dir))) as client:
        repo = client.app.state.service.repository  # type: ignore[attr-defined]
        with repo.lease("car_truck") as old:
            publish_copy(model_store, fresh_dir, "car_truck", 2, 2)
            assert repo.reload() == {"car_truck": [2]}
            # The request holding version 1 can still finish on it.
            assert old.batcher.submit(np.zeros((1, 32, 32, 3), np.uint8)).result(10).shape == (1, 2)
            assert not old.model.released
        assert old.model.released  # released when the last request let go
        assert client.post("/predict", content=png).headers["X-Model-Version"] == "2"


def test_reload_ignores_incomplete_and_invalid_folders(fresh_dir: Path, png: bytes) -> None:
    model_dir = fresh_dir / "car_truck"
    (model_dir / "5").mkdir()  # no metadata.json: still being written
    (model_dir / ".tmp-abc").mkdir()
    (model_dir / "0").mkdir()
    (model_dir / "v3").mkdir()
    (model_dir / "7").write_text("a file, not a folder")
    with TestClient(create_app(make_settings(fresh_dir))) as client:
        repo = client.app.state.service.repository  # type: ignore[attr-defined]
        assert repo.reload() == {"car_truck": [1]}
        assert repo.failures == {}
        assert client.post("/predict", content=png).headers["X-Model-Version"] == "1"


def test_reload_failed_version_is_retried_once_its_files_change(
    fresh_dir: Path, model_store: Path, png: bytes
) -> None:
    """A version copied in by a tool that writes metadata.json first fails, then loads."""
    publish_broken(fresh_dir, model_store, 2)
    with TestClient(create_app(make_settings(fresh_dir))) as client:
        repo = client.app.state.service.repository  # type: ignore[attr-defined]
        assert ("car_truck", 2) in repo.failures
        assert repo.reload() == {"car_truck": [1]}  # unchanged files: not retried
        good = model_store / "car_truck" / "2" / "saved_model.pb"
        (fresh_dir / "car_truck" / "2" / "saved_model.pb").write_bytes(good.read_bytes())
        assert repo.reload() == {"car_truck": [2]}
        assert ("car_truck", 2) not in repo.failures
        assert client.post("/predict", content=png).headers["X-Model-Version"] == "2"


def test_reload_wrong_label_count_is_rejected(fresh_dir: Path, model_store: Path) -> None:
    path = publish_copy(model_store, fresh_dir, "car_truck", 2, 2)
    meta = (path / "metadata.json").read_text().replace('"truck"', '"truck", "bus"')
    (path / "metadata.json").write_text(meta)
    with TestClient(create_app(make_settings(fresh_dir))) as client:
        repo = client.app.state.service.repository  # type: ignore[attr-defined]
        assert "3 labels" in repo.failures[("car_truck", 2)]
        assert client.get("/models").json()["models"][0]["version"] == 1


def test_reload_pinned_version_stays_loaded(fresh_dir: Path, model_store: Path, png: bytes) -> None:
    publish_copy(model_store, fresh_dir, "car_truck", 2, 2)
    settings = make_settings(fresh_dir, pinned_versions="car_truck:1")
    with TestClient(create_app(settings)) as client:
        status = client.get("/v1/models/car_truck").json()["model_version_status"]
        assert [s["version"] for s in status] == ["2", "1"]
        assert client.post("/predict", content=png).headers["X-Model-Version"] == "2"
        import base64

        body = {"instances": [{"b64": base64.b64encode(png).decode()}]}
        pinned = client.post("/v1/models/car_truck/versions/1:predict", json=body)
        latest = client.post("/v1/models/car_truck/versions/2:predict", json=body)
        assert pinned.status_code == 200 and latest.status_code == 200
        assert pinned.json() != latest.json()  # two different models answer
        assert client.get("/readyz").status_code == 200


def test_background_loading_serves_health_before_models_are_ready(
    fresh_dir: Path, png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    original = ModelRepository.reload

    def held_reload(self: ModelRepository) -> dict[str, list[int]]:
        release.wait(30)  # stands for a slow VGG16 load and warm-up
        return original(self)

    monkeypatch.setattr(ModelRepository, "reload", held_reload)
    settings = make_settings(fresh_dir, load_in_background=True)
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "still loading" in ready.text
        early = client.post("/predict", content=png)
        assert early.status_code == 503 and "still loading" in early.json()["error"]
        release.set()
        assert wait_for(lambda: client.get("/readyz").status_code == 200)
        assert client.post("/predict", content=png).status_code == 200
