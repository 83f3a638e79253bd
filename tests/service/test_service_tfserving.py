"""The TensorFlow Serving REST shapes: predict (row, named, columnar, pixels), status, metadata."""

from __future__ import annotations

import base64

import numpy as np
from fastapi.testclient import TestClient

from imaging.decode import load_image
from tests.service.conftest import LABELS, SIZE
from tests.service.test_service_errors import assert_error


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def served(client: TestClient, image: bytes) -> list[float]:
    classes = client.post("/predict", content=image).json()["predictions"][0]["classes"]
    return [c["score"] for c in sorted(classes, key=lambda c: c["class_id"])]


def test_tfserving_predict_b64_instances_row_format(
    client: TestClient, png: bytes, jpeg: bytes
) -> None:
    response = client.post(
        "/v1/models/car_truck:predict", json={"instances": [{"b64": b64(png)}, {"b64": b64(jpeg)}]}
    )
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["predictions"]
    assert len(body["predictions"]) == 2 and all(
        len(row) == len(LABELS) for row in body["predictions"]
    )
    assert np.allclose(body["predictions"][0], served(client, png), atol=1e-6)
    assert np.allclose(body["predictions"][1], served(client, jpeg), atol=1e-6)


def test_tfserving_predict_named_input_and_version(client: TestClient, png: bytes) -> None:
    response = client.post(
        "/v1/models/car_truck/versions/1:predict",
        json={"signature_name": "serving_default", "instances": [{"images": {"b64": b64(png)}}]},
    )
    assert response.status_code == 200
    assert np.allclose(response.json()["predictions"][0], served(client, png), atol=1e-6)


def test_tfserving_predict_columnar_inputs(client: TestClient, png: bytes) -> None:
    response = client.post(
        "/v1/models/car_truck:predict", json={"inputs": {"images": [{"b64": b64(png)}]}}
    )
    assert response.status_code == 200
    assert np.allclose(response.json()["outputs"][0], served(client, png), atol=1e-6)


def test_tfserving_predict_raw_pixel_instances(client: TestClient, png: bytes) -> None:
    pixels = load_image(png, SIZE).tolist()
    response = client.post("/v1/models/car_truck:predict", json={"instances": [pixels]})
    assert response.status_code == 200
    assert np.allclose(response.json()["predictions"][0], served(client, png), atol=1e-6)


def test_tfserving_predict_wrong_pixel_shape_is_422(client: TestClient) -> None:
    wrong = np.zeros((SIZE, SIZE + 1, 3), np.uint8).tolist()
    response = client.post("/v1/models/car_truck:predict", json={"instances": [wrong]})
    assert response.status_code == 422
    assert "shape" in response.json()["error"]
    flat = client.post("/v1/models/car_truck:predict", json={"instances": [[1, 2, 3]]})
    assert flat.status_code == 422


def test_tfserving_predict_more_instances_than_allowed_is_413(
    client: TestClient, png: bytes
) -> None:
    # The test settings allow 4 images per request, encoded or as pixel arrays alike.
    encoded = {"instances": [{"b64": b64(png)}] * 5}
    assert_error(client.post("/v1/models/car_truck:predict", json=encoded), 413, "5 images", "4")
    pixels = {"instances": [load_image(png, SIZE).tolist()] * 5}
    assert_error(client.post("/v1/models/car_truck:predict", json=pixels), 413, "5 images", "4")


def test_tfserving_status_reports_version_and_device(client: TestClient) -> None:
    for path in ("/v1/models/car_truck", "/v1/models/car_truck/versions/1"):
        response = client.get(path)
        assert response.status_code == 200
        (status,) = response.json()["model_version_status"]
        assert status["version"] == "1" and status["state"] == "AVAILABLE"
        assert status["status"] == {"error_code": "OK", "error_message": ""}
        assert status["device"] in ("/CPU:0", "/GPU:0")


def test_tfserving_metadata_has_signature_and_labels(client: TestClient) -> None:
    for path in ("/v1/models/car_truck/metadata", "/v1/models/car_truck/versions/1/metadata"):
        body = client.get(path).json()
        assert body["model_spec"] == {"name": "car_truck", "signature_name": "", "version": "1"}
        signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
        images = signature["inputs"]["images"]
        assert images["dtype"] == "DT_UINT8"
        assert [d["size"] for d in images["tensor_shape"]["dim"]] == ["-1", "32", "32", "3"]
        probabilities = signature["outputs"]["probabilities"]
        assert probabilities["dtype"] == "DT_FLOAT"
        assert [d["size"] for d in probabilities["tensor_shape"]["dim"]] == ["-1", "2"]
        assert signature["method_name"] == "tensorflow/serving/predict"
        assert body["labels"] == LABELS


def test_tfserving_unknown_version_is_404(client: TestClient, png: bytes) -> None:
    for response in (
        client.get("/v1/models/car_truck/versions/7"),
        client.get("/v1/models/car_truck/versions/7/metadata"),
        client.post(
            "/v1/models/car_truck/versions/7:predict", json={"instances": [{"b64": b64(png)}]}
        ),
    ):
        assert response.status_code == 404
        assert "version 7" in response.json()["error"]
