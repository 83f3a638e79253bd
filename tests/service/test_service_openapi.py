"""The OpenAPI document tells the truth: what it calls valid, the service accepts.

schemathesis (tests/service/test_service_openapi_fuzz.py) explores the whole
document; these pin the gaps it found, one by one.
"""

from __future__ import annotations

import base64
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from modelstore.layout import MAX_VERSION_DIGITS
from service.openapi_bodies import EXAMPLE_PNG_B64


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    return client.get("/openapi.json").json()


def json_body_schema(spec: dict[str, Any], path: str, media: str = "application/json") -> Any:
    return spec["paths"][path]["post"]["requestBody"]["content"][media]


def test_openapi_version_parameters_are_required_positive_integers(spec: dict[str, Any]) -> None:
    seen = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                if param["name"] != "version":
                    continue
                where = f"{method.upper()} {path}"
                # Never `anyOf [integer, null]` (schemathesis sent /versions/null), and never
                # a query parameter on the routes without a version.
                assert param["in"] == "path" and "{version}" in path, where
                assert param["required"] is True, where
                assert param["schema"]["type"] == "integer", where
                # parse_version reads 1 to 18 digits, no leading zero: exactly this range.
                assert param["schema"]["minimum"] == 1, where
                assert param["schema"]["maximum"] == 10**MAX_VERSION_DIGITS - 1, where
                seen += 1
    assert seen >= 6  # per version: v1 status, metadata, predict; v2 metadata, ready, infer


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("/v1/models/{name}:predict", "/v1/models/car_truck:predict"),
        ("/v1/models/{name}/versions/{version}:predict", "/v1/models/car_truck/versions/1:predict"),
        ("/v2/models/{name}/infer", "/v2/models/car_truck/infer"),
        ("/v2/models/{name}/versions/{version}/infer", "/v2/models/car_truck/versions/1/infer"),
        ("/decode_predictions", "/decode_predictions?model=car_truck"),
    ],
)
def test_openapi_documented_examples_are_answered_200(
    client: TestClient, spec: dict[str, Any], path: str, url: str
) -> None:
    body = json_body_schema(spec, path)
    jsonschema.validate(body["example"], body["schema"])
    response = client.post(url, json=body["example"])
    assert response.status_code == 200, response.text


PNG = {"b64": EXAMPLE_PNG_B64}
PIXELS = [[[0, 0, 0]]]
BYTES_TENSOR = {"name": "image_bytes", "datatype": "BYTES", "shape": [1], "data": [EXAMPLE_PNG_B64]}


@pytest.mark.parametrize(
    ("path", "url", "body"),
    [
        # Each body is refused as malformed (400) by the service, so the document must not
        # call it valid: schemathesis sent every one of these kinds as "schema-valid".
        ("/v1/models/{name}:predict", "/v1/models/car_truck:predict", {}),
        (
            "/v1/models/{name}:predict",
            "/v1/models/car_truck:predict",
            {"instances": [PNG], "inputs": [PNG]},
        ),
        ("/v1/models/{name}:predict", "/v1/models/car_truck:predict", {"instances": [PNG, PIXELS]}),
        ("/v1/models/{name}:predict", "/v1/models/car_truck:predict", {"instances": [{}]}),
        ("/v1/models/{name}:predict", "/v1/models/car_truck:predict", {"inputs": []}),
        ("/v2/models/{name}/infer", "/v2/models/car_truck/infer", {"inputs": []}),
        (
            "/v2/models/{name}/infer",
            "/v2/models/car_truck/infer",
            {"inputs": [BYTES_TENSOR, BYTES_TENSOR]},
        ),
        (
            "/v2/models/{name}/infer",
            "/v2/models/car_truck/infer",
            {"inputs": [{**BYTES_TENSOR, "datatype": "UINT8"}]},
        ),
        (
            "/v2/models/{name}/infer",
            "/v2/models/car_truck/infer",
            {"inputs": [{**BYTES_TENSOR, "shape": [0], "data": []}]},
        ),
        (
            "/v2/models/{name}/infer",
            "/v2/models/car_truck/infer",
            {"inputs": [BYTES_TENSOR], "outputs": [{"name": "top_labels"}]},
        ),
    ],
)
def test_openapi_bodies_the_service_refuses_are_not_schema_valid(
    client: TestClient, spec: dict[str, Any], path: str, url: str, body: Any
) -> None:
    assert client.post(url, json=body).status_code == 400
    schema = json_body_schema(spec, path)["schema"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)


def test_openapi_image_bodies_need_an_image(client: TestClient, spec: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator
    for path in ("/predict", "/decode_predictions"):
        multipart = json_body_schema(spec, path, "multipart/form-data")["schema"]
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"file": []}, multipart, cls=validator)
        assert client.post(path, files={"other": ("x", b"1")}).status_code == 400
        raw = json_body_schema(spec, path, "application/octet-stream")["schema"]
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate("", raw, cls=validator)
        empty = client.post(path, content=b"", headers={"Content-Type": "application/octet-stream"})
        assert empty.status_code == 400


def _is_binary(content: dict[str, Any]) -> bool:
    schema = content["schema"]
    file = schema.get("properties", {}).get("file", schema)
    return bool(file.get("type") == "string" and file.get("format") == "binary")


def _example_values(content: dict[str, Any]) -> list[Any]:
    """What /docs lets a person send for one media type: its examples (`example`,
    `examples.*.value`), or for an image body (a file picker in /docs) a real PNG."""
    values = [content["example"]] if "example" in content else []
    values += [example["value"] for example in content.get("examples", {}).values()]
    if _is_binary(content):
        values.append(base64.b64decode(EXAMPLE_PNG_B64))
    return values


def test_openapi_image_bodies_are_files_without_unresolvable_examples(
    client: TestClient, spec: dict[str, Any]
) -> None:
    # Swagger UI fetches `externalValue` examples and shows "Resolver error" for a data:
    # URI; an image field typed as an array shows as `array<string>`, not a file picker.
    assert "externalValue" not in client.get("/openapi.json").text
    for path in ("/predict", "/decode_predictions"):
        multipart = json_body_schema(spec, path, "multipart/form-data")
        file = multipart["schema"]["properties"]["file"]
        assert (file["type"], file["format"]) == ("string", "binary")
        raw = json_body_schema(spec, path, "application/octet-stream")
        assert (raw["schema"]["type"], raw["schema"]["format"]) == ("string", "binary")
        assert "examples" not in multipart and "examples" not in raw


def _filled(path: str, operation: dict[str, Any]) -> str:
    """`path` with each path parameter replaced by its documented example."""
    for param in operation.get("parameters", []):
        if param["in"] == "path":
            examples = param["schema"].get("examples") or [param.get("example")]
            assert examples[0] is not None, f"{path}: parameter {param['name']} has no example"
            path = path.replace("{" + param["name"] + "}", str(examples[0]))
    assert "{" not in path, path
    return path


def _operations(spec: dict[str, Any], method: str) -> list[tuple[str, dict[str, Any]]]:
    return [(path, ops[method]) for path, ops in spec["paths"].items() if method in ops]


def test_openapi_every_post_body_example_is_answered_2xx(
    client: TestClient, spec: dict[str, Any]
) -> None:
    posts = _operations(spec, "post")
    # /predict, /decode_predictions, TF Serving :predict (x2), KServe v2 infer (x2), admin,
    # /explain and KServe v1 :explain (x2).
    assert len(posts) == 10, [path for path, _ in posts]
    sent = 0
    for path, operation in posts:
        url = _filled(path, operation)
        if "requestBody" not in operation:
            # POST /admin/reload takes no body; without an admin key: its documented 403.
            response = client.post(url)
            assert response.status_code == 403 and "403" in operation["responses"], path
            continue
        for media, content in operation["requestBody"]["content"].items():
            values = _example_values(content)
            assert values, f"POST {path} ({media}) has no example"
            for value in values:
                if media == "application/json":
                    response = client.post(url, json=value)
                elif media == "multipart/form-data":
                    response = client.post(url, files=[("file", ("example.png", value))])
                else:
                    response = client.post(url, content=value, headers={"Content-Type": media})
                if "explain" in path:
                    # The shared car_truck predates the explain signature: its documented
                    # 409 (the 200 is tests/service/test_service_unknown.py's).
                    assert response.status_code == 409 and "409" in operation["responses"]
                else:
                    assert 200 <= response.status_code < 300, (path, media, response.text)
                sent += 1
    assert sent == 13  # predict 2, decode_predictions 3, :predict 2, infer 2, explain 2, :explain 2


def test_openapi_every_get_path_parameter_example_is_answered_200(
    client: TestClient, spec: dict[str, Any]
) -> None:
    routes = [(p, op) for p, op in _operations(spec, "get") if "{" in p]
    assert len(routes) >= 8  # TF Serving status and metadata, KServe v2 metadata and ready
    for path, operation in routes:
        response = client.get(_filled(path, operation))
        assert response.status_code == 200, (path, response.text)
