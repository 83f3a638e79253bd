"""POST /predict and /decode_predictions, GET /models, /healthz, /readyz, /docs, GET /."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from fastapi.testclient import TestClient

from imaging.decode import load_image
from service import predictor as predictor_module
from service.routers import demo_page
from tests.conftest import encode
from tests.service.conftest import LABELS, SIZE, files


def direct_probabilities(version_dir: Path, image: bytes) -> np.ndarray:
    """What the SavedModel itself says for `image` (decoded by the shared function)."""
    saved = tf.saved_model.load(str(version_dir))
    batch = tf.constant(load_image(image, SIZE)[None], dtype=tf.uint8)
    return saved.signatures["serving_default"](images=batch)["probabilities"].numpy()[0]


def test_predict_multipart_returns_every_class_best_first(client: TestClient, png: bytes) -> None:
    response = client.post("/predict?model=car_truck", files=files(("a.png", png)))
    assert response.status_code == 200
    assert response.headers["X-Model-Name"] == "car_truck"
    assert response.headers["X-Model-Version"] == "1"
    body = response.json()
    assert body["model"] == "car_truck" and body["version"] == 1
    assert len(body["predictions"]) == 1
    prediction = body["predictions"][0]
    assert prediction["filename"] == "a.png"
    classes = prediction["classes"]
    assert {c["label"] for c in classes} == set(LABELS)
    assert all(set(c) == {"class_id", "label", "score"} for c in classes)
    assert [LABELS[c["class_id"]] for c in classes] == [c["label"] for c in classes]
    scores = [c["score"] for c in classes]
    assert scores == sorted(scores, reverse=True)
    assert abs(sum(scores) - 1.0) < 1e-5


def scores_by_class_id(classes: list[dict[str, Any]]) -> np.ndarray:
    return np.array([c["score"] for c in sorted(classes, key=lambda c: c["class_id"])])


def test_predict_many_files_keeps_order_and_names(
    client: TestClient, png: bytes, jpeg: bytes
) -> None:
    white = encode(np.full((32, 32, 3), 255, np.uint8), "PNG")
    named = [("x.png", png), ("y.jpg", jpeg), ("z.png", white)]
    # Each image's answer on its own, to recognise its row in the multi-file answer.
    alone = [
        scores_by_class_id(
            client.post("/predict", content=data).json()["predictions"][0]["classes"]
        )
        for _, data in named
    ]
    for i in range(len(alone)):
        for j in range(i):
            # Rows that differ far beyond the tolerance below: a swap cannot go unnoticed.
            assert np.max(np.abs(alone[i] - alone[j])) > 1e-3
    response = client.post("/predict", files=files(*named))
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert [p["filename"] for p in predictions] == ["x.png", "y.jpg", "z.png"]
    for prediction, expected in zip(predictions, alone, strict=True):
        assert np.max(np.abs(scores_by_class_id(prediction["classes"]) - expected)) <= 1e-5


def test_predict_decodes_on_at_most_decode_threads_threads(
    client: TestClient, png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shared app runs decode_threads=2: four images of one request decode two at a time.
    lock = threading.Lock()
    running = [0]
    most = [0]
    real = predictor_module.load_image

    def counted(data: bytes, size: int, **kwargs: Any) -> np.ndarray:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.5)  # long enough for every thread the pool has to start one
        with lock:
            running[0] -= 1
        return real(data, size, **kwargs)

    monkeypatch.setattr(predictor_module, "load_image", counted)
    response = client.post("/predict", files=files(*[(f"{i}.png", png) for i in range(4)]))
    assert response.status_code == 200 and len(response.json()["predictions"]) == 4
    assert most[0] <= 2  # the limit; a default-sized pool runs all four at once


def test_predict_raw_body_uses_default_model(client: TestClient, jpeg: bytes) -> None:
    response = client.post("/predict", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "car_truck"
    assert body["predictions"][0]["filename"] is None


def test_predict_matches_savedmodel_called_directly(
    client: TestClient, models_dir: Path, png: bytes, jpeg: bytes
) -> None:
    for image in (png, jpeg):
        served = client.post("/predict", content=image).json()["predictions"][0]["classes"]
        by_id = np.array([s["score"] for s in sorted(served, key=lambda c: c["class_id"])])
        expected = direct_probabilities(models_dir / "car_truck" / "1", image)
        assert np.max(np.abs(by_id - expected)) <= 1e-5


def test_predict_matches_training_predict_and_evaluate_path(
    client: TestClient, models_dir: Path, tmp_path: Path, png: bytes, jpeg: bytes
) -> None:
    """The service and `training evaluate`/`predict` (one loader) agree on the same files."""
    from modelstore.loader import load_published
    from training.predict import score_files

    paths = []
    for name, data in (("a.png", png), ("b.jpg", jpeg)):
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    (batch,) = score_files(load_published(models_dir / "car_truck"), paths)
    for path, expected in zip(batch.paths, batch.probabilities, strict=True):
        served = client.post("/predict", content=path.read_bytes()).json()
        scores = {c["class_id"]: c["score"] for c in served["predictions"][0]["classes"]}
        assert np.max(np.abs(np.array([scores[0], scores[1]]) - expected)) <= 1e-5


def test_decode_predictions_top_k_cuts_classes(client: TestClient, png: bytes) -> None:
    full = client.post("/predict", content=png).json()["predictions"][0]["classes"]
    response = client.post("/decode_predictions?top=1", files=files(("a.png", png)))
    assert response.status_code == 200
    classes = response.json()["predictions"][0]["classes"]
    assert classes == full[:1]


def test_decode_predictions_imagenet_reports_wordnet_ids(client: TestClient, png: bytes) -> None:
    from training.imagenet import imagenet_class_index

    response = client.post("/decode_predictions?model=vgg16_imagenet", content=png)
    assert response.status_code == 200
    classes = response.json()["predictions"][0]["classes"]
    assert len(classes) == 5  # the default top
    for c in classes:
        assert c["class_id"].startswith("n") and len(c["class_id"]) == 9
    # The WordNet id and the name refer to the same ImageNet class.
    assert (classes[0]["class_id"], classes[0]["label"]) in set(imagenet_class_index())


def test_decode_predictions_json_scores_are_decoded(client: TestClient) -> None:
    response = client.post(
        "/decode_predictions?model=car_truck&top=2", json={"predictions": [[0.2, 0.8], [0.9, 0.1]]}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["predictions"] == [
        {
            "filename": None,
            "label": "truck",
            "classes": [
                {"class_id": 1, "label": "truck", "score": 0.8},
                {"class_id": 0, "label": "car", "score": 0.2},
            ],
            "unknown_score": None,  # client-sent scores: no picture to score
            "unknown": None,
        },
        {
            "filename": None,
            "label": "car",
            "classes": [
                {"class_id": 0, "label": "car", "score": 0.9},
                {"class_id": 1, "label": "truck", "score": 0.1},
            ],
            "unknown_score": None,
            "unknown": None,
        },
    ]


def test_models_lists_loaded_models(client: TestClient) -> None:
    response = client.get("/models")
    assert response.status_code == 200
    body = response.json()
    assert body["default_model"] == "car_truck"
    by_name = {m["name"]: m for m in body["models"]}
    assert set(by_name) == {"car_truck", "vgg16_imagenet"}
    car = by_name["car_truck"]
    assert car["version"] == 1 and car["versions"] == [1]
    assert car["labels"] == LABELS and car["image_size"] == SIZE
    assert car["device"] in ("/CPU:0", "/GPU:0")
    assert car["base_weights"]["kind"] == "none"


def test_health_and_ready_answer_ok(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_readyz_not_ready_without_default_model(models_dir: Path, tmp_path: Path) -> None:
    from service.app import create_app
    from tests.service.conftest import make_settings

    empty = tmp_path / "empty"
    empty.mkdir()
    with TestClient(create_app(make_settings(empty))) as test_client:
        response = test_client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        body = response.json()
        assert body["status"] == 503 and "car_truck" in body["error"]
        # Predicting against a repository without the model is a 404, not a crash.
        missing = test_client.post("/predict", content=b"\x89PNG")
        assert missing.status_code == 404


def test_docs_and_openapi_describe_the_api(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/predict",
        "/decode_predictions",
        "/models",
        "/v1/models/{name}:predict",
        "/healthz",
        "/readyz",
        "/metrics",
        "/admin/reload",
    ):
        assert path in paths


def test_demo_page_served(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    # An element the page's script and the browser test rely on: the real page, not any HTML.
    assert 'id="predict-form"' in response.text


def test_demo_page_missing_file_is_clear_404(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_page, "INDEX", tmp_path / "no-such-index.html")
    response = client.get("/")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == 404
    assert "demo page is not installed" in body["error"]
