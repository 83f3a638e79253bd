"""While a model loads and warms up, /models and /v1/models/<name> say so, step by step.

A real tiny model; its warm-up at batch 4 is held on an event (not a sleep), so the
test looks at the service at a known step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from modelstore.loader import PublishedModel
from service.app import create_app
from tests.service.conftest import make_settings, wait_for
from tests.service.test_service_reload import publish_broken


@pytest.fixture
def held_warm_up(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """(reached, release): the first model call at batch 4 sets `reached`, waits for `release`."""
    reached, release = threading.Event(), threading.Event()
    original = PublishedModel.predict

    def gated(self: PublishedModel, pictures: np.ndarray) -> np.ndarray:
        if len(pictures) == 4 and not reached.is_set():
            reached.set()
            release.wait(60)
        return original(self, pictures)

    monkeypatch.setattr(PublishedModel, "predict", gated)
    try:
        yield reached, release
    finally:
        release.set()  # never leave the loading thread (and the app's shutdown) waiting


def test_models_reports_warm_up_step_while_loading(
    fresh_dir: Path,
    held_warm_up: tuple[threading.Event, threading.Event],
    caplog: pytest.LogCaptureFixture,
) -> None:
    reached, release = held_warm_up
    caplog.set_level(logging.INFO, logger="service.load_progress")
    # The steps of a version loaded whole (a shared base's are "loading the base ...",
    # "base: warm-up batch ...", then the head's warm-up).
    settings = make_settings(fresh_dir, load_in_background=True, share_base=False)
    with TestClient(create_app(settings)) as client:
        try:
            assert reached.wait(60), "the warm-up never reached batch 4"
            body = client.get("/models").json()
            assert body["models"] == []
            assert body["scanned"] is False
            (entry,) = body["loading"]
            assert (entry["name"], entry["version"], entry["state"]) == ("car_truck", 1, "warming")
            assert entry["step"] == "warm-up batch 4, 2 of 2"
            assert entry["error"] is None
            status = client.get("/v1/models/car_truck").json()["model_version_status"]
            assert [(s["version"], s["state"], s["step"]) for s in status] == [
                ("1", "LOADING", "warm-up batch 4, 2 of 2")
            ]
            assert client.get("/v1/models/car_truck/versions/1").json() == {
                "model_version_status": status
            }
            assert client.get("/readyz").status_code == 503
        finally:
            release.set()  # a failed assertion must not leave the shutdown waiting
        assert wait_for(lambda: client.get("/readyz").status_code == 200)
        body = client.get("/models").json()
        assert body["loading"] == [] and body["scanned"] is True
        assert [(m["name"], m["state"]) for m in body["models"]] == [("car_truck", "ready")]
        status = client.get("/v1/models/car_truck").json()["model_version_status"]
        assert [(s["version"], s["state"]) for s in status] == [("1", "AVAILABLE")]
    # One log line per finished step, with its seconds.
    steps = [r.getMessage() for r in caplog.records if " took " in r.getMessage()]
    assert [line.split(": ", 1)[1].rsplit(" took ", 1)[0] for line in steps] == [
        "reading the SavedModel",
        "warm-up batch 1, 1 of 2",
        "warm-up batch 4, 2 of 2",
    ]
    assert all(line.startswith("model car_truck version 1: ") for line in steps)
    assert all(line.endswith(" s") for line in steps)


def test_models_reports_failed_version_with_its_error(fresh_dir: Path, model_store: Path) -> None:
    publish_broken(fresh_dir, model_store, 2)
    with TestClient(create_app(make_settings(fresh_dir))) as client:
        body = client.get("/models").json()
        assert [(m["name"], m["version"]) for m in body["models"]] == [("car_truck", 1)]
        (failed,) = body["loading"]
        assert (failed["version"], failed["state"]) == (2, "failed")
        assert "SavedModel does not load" in failed["error"]
        status = client.get("/v1/models/car_truck").json()["model_version_status"]
        assert [(s["version"], s["state"]) for s in status] == [("2", "END"), ("1", "AVAILABLE")]
        assert status[0]["status"]["error_code"] == "UNKNOWN"
        assert "SavedModel does not load" in status[0]["status"]["error_message"]
