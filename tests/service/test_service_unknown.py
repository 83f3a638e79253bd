"""The unknown score on every protocol, abstain, and explanations (status codes, shapes)."""

from __future__ import annotations

import base64
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from modelstore.loader import load_published
from service.app import create_app
from tests.service.conftest import LABELS, SIZE, files, make_settings, publish_copy
from tests.support.unknown_models import export_tiny_scored


@pytest.fixture(scope="module")
def scored_dir(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`scored` v1 (calibrated threshold), `alarmed` v1 (threshold -1: flags every picture),
    and `car_truck` v1 exported before the scorer existed."""
    root = tmp_path_factory.mktemp("scored")
    export_tiny_scored(root, "scored", LABELS, SIZE, seed=1)
    export_tiny_scored(root, "alarmed", LABELS, SIZE, seed=1, threshold=-1.0)
    (root / "car_truck").mkdir()
    publish_copy(model_store, root, "car_truck", 1, 1)
    return root


@pytest.fixture(scope="module")
def app(scored_dir: Path) -> Iterator[TestClient]:
    settings = make_settings(scored_dir, default_model="scored")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_predict_carries_unknown_score_and_flag(app: TestClient, png: bytes) -> None:
    body = app.post("/predict?model=scored", files=files(("a.png", png))).json()
    first = body["predictions"][0]
    assert isinstance(first["unknown_score"], float)
    assert isinstance(first["unknown"], bool)
    assert first["label"] == first["classes"][0]["label"]  # no abstain: the best class


def test_predict_unknown_score_matches_the_signature(
    app: TestClient, png: bytes, scored_dir: Path
) -> None:
    from imaging.decode import load_image

    body = app.post("/predict?model=scored", content=png).json()
    model = load_published(scored_dir / "scored")
    probs, scores = model.predict_with_unknown(load_image(png, SIZE)[None])
    assert np.isclose(body["predictions"][0]["unknown_score"], scores[0], atol=1e-5)
    served = sorted(body["predictions"][0]["classes"], key=lambda c: c["class_id"])
    assert np.allclose([c["score"] for c in served], probs[0], atol=1e-5)
    # The same probabilities as serving_default: the scorer does not change the answer.
    assert np.allclose(model.predict(load_image(png, SIZE)[None]), probs, atol=1e-6)


def test_predict_abstain_answers_unknown_when_flagged(app: TestClient, png: bytes) -> None:
    flagged = app.post("/predict?model=alarmed&abstain=true", content=png).json()["predictions"]
    assert flagged[0]["unknown"] is True and flagged[0]["label"] == "unknown"
    plain = app.post("/predict?model=alarmed", content=png).json()["predictions"]
    assert plain[0]["unknown"] is True and plain[0]["label"] in LABELS


def test_predict_abstain_keeps_the_label_when_not_flagged(app: TestClient, png: bytes) -> None:
    body = app.post("/predict?model=car_truck&abstain=true", content=png).json()
    first = body["predictions"][0]
    assert first["label"] in LABELS
    assert first["unknown_score"] is None and first["unknown"] is None  # no scorer


def test_decode_predictions_carries_unknown_fields(app: TestClient, png: bytes) -> None:
    body = app.post("/decode_predictions?model=scored&top=1", content=png).json()
    assert isinstance(body["predictions"][0]["unknown_score"], float)
    scores = app.post("/decode_predictions?model=scored", json={"predictions": [[0.3, 0.7]]})
    assert scores.json()["predictions"][0]["unknown_score"] is None  # client-sent scores


def test_models_lists_the_scorer_or_its_absence(app: TestClient) -> None:
    models = {m["name"]: m for m in app.get("/models").json()["models"]}
    scorer = models["scored"]["unknown_scorer"]
    assert scorer["method"] == "knn-cosine" and isinstance(scorer["threshold"], float)
    assert models["car_truck"]["unknown_scorer"] is None
    # A scored version whose head carries the scorer runs on a shared base, so every
    # test in this file answers its unknown fields (and explains) through the split path.
    assert models["scored"]["served"] == models["alarmed"]["served"] == "shared-base"


def test_tfserving_default_signature_keeps_probabilities_only(app: TestClient, png: bytes) -> None:
    body = app.post("/v1/models/scored:predict", json={"instances": [{"b64": b64(png)}]}).json()
    assert list(body) == ["predictions"] and len(body["predictions"][0]) == len(LABELS)


def test_tfserving_unknown_signature_row_and_columnar(app: TestClient, png: bytes) -> None:
    sig = "predict_with_unknown"
    row = app.post(
        "/v1/models/scored:predict", json={"signature_name": sig, "instances": [{"b64": b64(png)}]}
    ).json()["predictions"][0]
    assert set(row) == {"probabilities", "unknown_score", "unknown"}
    col = app.post(
        "/v1/models/scored/versions/1:predict",
        json={"signature_name": sig, "inputs": [{"b64": b64(png)}]},
    ).json()["outputs"]
    assert np.isclose(col["unknown_score"][0], row["unknown_score"], atol=1e-6)
    old = app.post(
        "/v1/models/car_truck:predict", json={"signature_name": sig, "instances": [{"b64": "AA=="}]}
    )
    assert old.status_code in (400, 415, 422)  # the image is bad too; never a 200
    old = app.post(
        "/v1/models/car_truck:predict",
        json={"signature_name": sig, "instances": [{"b64": b64(png)}]},
    )
    assert old.status_code == 409 and "no unknown scorer" in old.json()["error"]


def test_oip_infer_answers_unknown_outputs(app: TestClient, png: bytes) -> None:
    request = {
        "inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [1], "data": [b64(png)]}]
    }
    outputs = {
        o["name"]: o for o in app.post("/v2/models/scored/infer", json=request).json()["outputs"]
    }
    assert outputs["unknown_score"]["datatype"] == "FP32" and outputs["unknown_score"]["shape"] == [
        1
    ]
    assert outputs["unknown"]["datatype"] == "BOOL" and isinstance(
        outputs["unknown"]["data"][0], bool
    )
    old = {
        o["name"] for o in app.post("/v2/models/car_truck/infer", json=request).json()["outputs"]
    }
    assert old == {"probabilities"}
    asked = {**request, "outputs": [{"name": "unknown_score"}]}
    assert app.post("/v2/models/car_truck/infer", json=asked).status_code == 409
    meta = {o["name"] for o in app.get("/v2/models/scored").json()["outputs"]}
    assert {"unknown_score", "unknown"} <= meta


def test_oip_infer_binary_unknown_flag_is_one_byte(app: TestClient, png: bytes) -> None:
    request = {
        "inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [1], "data": [b64(png)]}],
        "outputs": [{"name": "unknown", "parameters": {"binary_data": True}}],
    }
    response = app.post("/v2/models/alarmed/infer", json=request)
    header_len = int(response.headers["Inference-Header-Content-Length"])
    header = json.loads(response.content[:header_len])
    assert header["outputs"][0]["parameters"]["binary_data_size"] == 1
    assert response.content[header_len:] == b"\x01"  # threshold -1: flagged


def _png_pixels(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def test_explain_returns_png_overlay_and_array(app: TestClient, png: bytes) -> None:
    response = app.post("/explain?model=scored&heatmap_array=true", files=files(("a.png", png)))
    assert response.status_code == 200
    item = response.json()["explanations"][0]
    assert item["filename"] == "a.png" and item["label"] in LABELS
    overlay = _png_pixels(item["heatmap_png"])
    assert overlay.ndim == 3 and overlay.shape[2] == 3 and overlay.shape[0] >= SIZE
    heat = np.asarray(item["heatmap"])
    assert list(heat.shape) == item["heatmap_shape"] and heat.min() >= 0 and heat.max() <= 1
    assert "heatmap" not in app.post("/explain?model=scored", content=png).json()["explanations"][0]


def test_explain_requested_class_by_label_and_index(app: TestClient, png: bytes) -> None:
    for target, label in (("truck", "truck"), ("0", "car")):
        body = app.post(f"/explain?model=scored&class={target}", content=png).json()
        assert body["explanations"][0]["label"] == label
    bad = app.post("/explain?model=scored&class=boat", content=png)
    assert bad.status_code == 422 and "boat" in bad.json()["error"]


def test_explain_v1_verb_with_versions_and_pixels(app: TestClient, png: bytes) -> None:
    pixels = np.zeros((SIZE, SIZE, 3), np.uint8).tolist()
    response = app.post(
        "/v1/models/scored/versions/1:explain",
        json={"instances": [{"b64": b64(png)}], "class": "car", "heatmap_array": True},
    )
    assert response.status_code == 200
    assert response.json()["explanations"][0]["label"] == "car"
    assert app.post("/v1/models/scored:explain", json={"instances": [pixels]}).status_code == 200
    assert (
        app.post(
            "/v1/models/scored:explain", json={"instances": [pixels], "heatmap_array": 1}
        ).status_code
        == 400
    )


def test_explain_status_codes(app: TestClient, png: bytes) -> None:
    old = app.post("/explain?model=car_truck", content=png)
    assert old.status_code == 409 and "explain" in old.json()["error"]
    v1_old = app.post("/v1/models/car_truck:explain", json={"instances": [{"b64": b64(png)}]})
    assert v1_old.status_code == 409
    assert app.post("/explain?model=nope", content=png).status_code == 404
    assert (
        app.post(
            "/v1/models/scored/versions/9:explain", json={"instances": [{"b64": b64(png)}]}
        ).status_code
        == 404
    )
    got = app.get("/v1/models/scored:explain")
    assert got.status_code == 405 and got.headers["allow"] == "POST"
    assert app.post("/explain?model=scored", content=b"not an image").status_code == 415
    too_many = files(*[(f"{i}.png", png) for i in range(5)])  # the limit is 4 per request
    assert app.post("/explain?model=scored", files=too_many).status_code == 413


def test_explain_queue_full_is_503(scored_dir: Path, png: bytes, tmp_path: Path) -> None:
    root = tmp_path / "models"
    shutil.copytree(scored_dir / "scored", root / "scored")
    settings = make_settings(root, default_model="scored", max_queue=1)
    with TestClient(create_app(settings)) as client:
        state = client.app.state.service  # type: ignore[attr-defined]
        state.explainer._waiting = 1  # one image being explained already
        busy = client.post("/explain?model=scored", content=png)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        state.explainer._waiting = 0
        assert client.post("/explain?model=scored", content=png).status_code == 200
