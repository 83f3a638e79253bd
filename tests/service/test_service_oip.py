"""Open Inference Protocol v2, tested with the real KServe v2 / Triton client against a live service."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from bench.support.harness import running_service
from tests.conftest import encode
from tests.service.conftest import LABELS, SIZE
from tests.service.test_service_errors import assert_error

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def triton(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpclient.InferenceServerClient]:
    log = tmp_path_factory.mktemp("oip") / "service.log"
    # fp32 like the `client` fixture: the tests compare both within 1e-5.
    flags = ("--poll-interval-s", "0", "--precision", "fp32", "--default-model", "car_truck")
    with running_service(models_dir, *flags, log=log) as (url, _):
        client = httpclient.InferenceServerClient(url.removeprefix("http://"))
        yield client
        client.close()


def served_scores(client: TestClient, image: bytes) -> np.ndarray:
    classes = client.post("/predict", content=image).json()["predictions"][0]["classes"]
    return np.array([c["score"] for c in sorted(classes, key=lambda c: c["class_id"])])


def test_oip_health_and_server_metadata(triton: httpclient.InferenceServerClient) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("car_truck")
    assert triton.is_model_ready("car_truck", "1")
    assert not triton.is_model_ready("no_such_model")
    meta = triton.get_server_metadata()
    assert meta["name"] == "vgg-transfer-service"
    assert "binary_tensor_data" in meta["extensions"]


def test_oip_model_metadata_describes_inputs_and_outputs(
    triton: httpclient.InferenceServerClient,
) -> None:
    meta = triton.get_model_metadata("car_truck")
    assert meta["name"] == "car_truck" and meta["versions"] == ["1"]
    inputs = {i["name"]: (i["datatype"], i["shape"]) for i in meta["inputs"]}
    assert inputs == {"images": ("UINT8", [-1, SIZE, SIZE, 3]), "image_bytes": ("BYTES", [-1])}
    outputs = {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]}
    assert outputs["probabilities"] == ("FP32", [-1, len(LABELS)])
    with pytest.raises(InferenceServerException) as err:
        triton.get_model_metadata("no_such_model")
    assert err.value.status() == "404"


@pytest.mark.parametrize("binary", [True, False])
def test_oip_infer_bytes_matches_predict(
    triton: httpclient.InferenceServerClient,
    client: TestClient,
    png: bytes,
    jpeg: bytes,
    binary: bool,
) -> None:
    images = np.array([png, jpeg], dtype=np.object_)
    tensor = httpclient.InferInput("image_bytes", [2], "BYTES")
    if binary:
        tensor.set_data_from_numpy(images, binary_data=True)
    else:  # JSON: BYTES elements travel as base64 strings
        import base64

        tensor.set_data_from_numpy(
            np.array([base64.b64encode(x).decode() for x in (png, jpeg)], dtype=np.object_),
            binary_data=False,
        )
    result = triton.infer("car_truck", [tensor])
    probs = result.as_numpy("probabilities")
    assert probs.shape == (2, len(LABELS)) and probs.dtype == np.float32
    for row, image in zip(probs, (png, jpeg), strict=True):
        assert np.max(np.abs(row - served_scores(client, image))) <= 1e-5
    assert result.get_response()["model_version"] == "1"


@pytest.mark.parametrize("binary", [True, False])
def test_oip_infer_uint8_matches_tfserving_pixels(
    triton: httpclient.InferenceServerClient, client: TestClient, binary: bool
) -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    tensor = httpclient.InferInput("images", list(pixels.shape), "UINT8")
    tensor.set_data_from_numpy(pixels, binary_data=binary)
    wanted = [httpclient.InferRequestedOutput("probabilities", binary_data=binary)]
    probs = triton.infer("car_truck", [tensor], model_version="1", outputs=wanted).as_numpy(
        "probabilities"
    )
    v1 = client.post("/v1/models/car_truck:predict", json={"instances": pixels.tolist()})
    assert np.max(np.abs(probs - np.array(v1.json()["predictions"]))) <= 1e-6


def test_oip_top_k_outputs_labels_best_first(
    triton: httpclient.InferenceServerClient, png: bytes
) -> None:
    tensor = httpclient.InferInput("image_bytes", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([png], dtype=np.object_))
    result = triton.infer(
        "vgg16_imagenet",
        [tensor],
        outputs=[
            httpclient.InferRequestedOutput("probabilities"),
            httpclient.InferRequestedOutput("top_labels"),
            httpclient.InferRequestedOutput("top_scores"),
        ],
        parameters={"top_k": 3},
    )
    probs = result.as_numpy("probabilities")[0]
    labels = [x.decode() for x in result.as_numpy("top_labels")[0]]
    scores = result.as_numpy("top_scores")[0]
    best = np.argsort(-probs, kind="stable")[:3]
    assert scores.tolist() == pytest.approx(probs[best].tolist())
    meta = triton.get_model_metadata("vgg16_imagenet")
    assert labels == [meta["parameters"]["labels"][i] for i in best]


def test_oip_bad_shape_is_4xx_not_500(triton: httpclient.InferenceServerClient) -> None:
    pixels = np.zeros((1, SIZE + 1, SIZE, 3), np.uint8)  # wrong size for the model
    tensor = httpclient.InferInput("images", list(pixels.shape), "UINT8")
    tensor.set_data_from_numpy(pixels)
    with pytest.raises(InferenceServerException) as err:
        triton.infer("car_truck", [tensor])
    assert err.value.status() == "422"
    assert "shape" in err.value.message()
    assert triton.is_server_ready()


_PNG_B64 = base64.b64encode(encode(np.zeros((1, 1, 3), np.uint8))).decode()
_PNG_TENSOR = {"name": "image_bytes", "datatype": "BYTES", "shape": [1], "data": [_PNG_B64]}


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        ({"inputs": []}, 400, "exactly one"),
        (
            {"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1], "data": [1]}]},
            400,
            "unknown",
        ),
        (
            {"inputs": [{"name": "images", "datatype": "FP32", "shape": [1], "data": [1]}]},
            400,
            "UINT8",
        ),
        (
            {
                "inputs": [
                    {"name": "images", "datatype": "UINT8", "shape": [1, 2, 2, 3], "data": [1]}
                ]
            },
            422,
            "values",
        ),
        ({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 2, 2, 3]}]}, 400, "data"),
        (
            {
                "inputs": [
                    {
                        "name": "images",
                        "datatype": "UINT8",
                        "shape": [2**40, 2**40, 2, 3],
                        "data": [],
                    }
                ]
            },
            422,
            "values",
        ),
        (  # beyond 64-bit integers: not a shape
            {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [10**30, 3], "data": []}]},
            400,
            "shape",
        ),
        (
            {
                "inputs": [
                    {"name": "image_bytes", "datatype": "BYTES", "shape": [1], "data": ["%%"]}
                ]
            },
            400,
            "base64",
        ),
        (
            {
                "inputs": [
                    {"name": "image_bytes", "datatype": "BYTES", "shape": [1], "data": ["aGVsbG8="]}
                ]
            },
            415,
            "",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "images",
                        "datatype": "UINT8",
                        "shape": [1, SIZE, SIZE, 3],
                        "data": [300] * (SIZE * SIZE * 3),
                    }
                ]
            },
            422,
            "0 to 255",
        ),
        # Found by schemathesis: JSON of the wrong type where the codec expected a
        # string or an object raised TypeError / AttributeError (500).
        (
            {"inputs": [{"name": {}, "datatype": "BYTES", "shape": [1], "data": ["aGk="]}]},
            400,
            "unknown input",
        ),
        (
            {"inputs": [_PNG_TENSOR], "outputs": [{"name": "probabilities", "parameters": [1]}]},
            400,
            "must be an object",
        ),
        ({"inputs": [_PNG_TENSOR], "outputs": 5}, 400, "'outputs' must be a list"),
        ({"inputs": [_PNG_TENSOR], "parameters": {"top_k": 0}}, 400, "top_k must be a positive"),
    ],
)
def test_oip_bad_requests_get_their_status(
    client: TestClient, body: dict, status: int, word: str
) -> None:
    response = client.post("/v2/models/car_truck/infer", json=body)
    assert_error(response, status, word)


def test_oip_binary_header_longer_than_body_is_400(client: TestClient) -> None:
    response = client.post(
        "/v2/models/car_truck/infer",
        content=b'{"inputs": []}',
        headers={"Inference-Header-Content-Length": "999"},
    )
    assert_error(response, 400, "Inference-Header-Content-Length")


def test_oip_whole_number_floats_count_as_integers(client: TestClient) -> None:
    # JSON Schema (and so the OpenAPI document) counts 1.0 as an integer; found by schemathesis.
    tensor = {**_PNG_TENSOR, "shape": [1.0]}
    response = client.post(
        "/v2/models/car_truck/infer", json={"inputs": [tensor], "parameters": {"top_k": 2.0}}
    )
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["probabilities"]["shape"] == [1, len(LABELS)]
    assert outputs["top_labels"]["shape"] == [1, 2]
    fraction = client.post(
        "/v2/models/car_truck/infer", json={"inputs": [{**tensor, "shape": [1.5]}]}
    )
    assert_error(fraction, 400, "shape")
