"""OpenAPI request bodies of the routes that read their body themselves (off the event loop).

FastAPI cannot infer these (the routes take `Request`), so they are spelled out
here, once, for /docs and for clients generated from /openapi.json.
"""

from __future__ import annotations

from typing import Any

from modelstore.contract import INPUT_NAMES, SIGNATURES

BINARY = {"type": "string", "format": "binary"}


def request_body(**content: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` for a required body; keyword names are media types (`_` for `/`)."""
    return {
        "requestBody": {
            "required": True,
            "content": {kind.replace("_", "/", 1): spec for kind, spec in content.items()},
        }
    }


_B64 = {
    "type": "object",
    "properties": {"b64": {"type": "string", "description": "base64 of an encoded image"}},
    "required": ["b64"],
}
_PIXELS = {
    "type": "array",
    "description": "uint8 pixels [height][width][3] at the model's input size",
    "items": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
}
_INSTANCE = {"anyOf": [_B64, _PIXELS, {"type": "object", "description": '{"images": ...}'}]}
_IMAGES: dict[str, Any] = {
    "multipart_form-data": {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "array", "items": BINARY}},
            "required": ["file"],
        }
    },
    "application_octet-stream": {"schema": BINARY},
}

# /predict: multipart files (field `file`, repeatable) or one raw image body.
IMAGE_BODY = request_body(**_IMAGES)

# /decode_predictions: the same, or JSON scores to decode.
DECODE_PREDICTIONS_BODY = request_body(
    **_IMAGES,
    application_json={
        "schema": {
            "type": "object",
            "properties": {
                "predictions": {
                    "type": "array",
                    "description": "rows of class scores, one per image, in label order",
                    "items": {"type": "array", "items": {"type": "number"}},
                }
            },
            "required": ["predictions"],
        },
        "example": {"predictions": [[0.1, 0.9]]},
    },
)

# /v1/models/{name}:predict (TensorFlow Serving REST, row or columnar).
TFSERVING_PREDICT_BODY = request_body(
    application_json={
        "schema": {
            "type": "object",
            "properties": {
                "signature_name": {"type": "string", "enum": list(SIGNATURES)},
                "instances": {"type": "array", "items": _INSTANCE, "minItems": 1},
                "inputs": {"anyOf": [{"type": "array", "items": _INSTANCE}, {"type": "object"}]},
            },
        },
        "example": {"instances": [{"b64": "<base64 of a JPEG>"}]},
    }
)

# /v2/models/{name}/infer (Open Inference Protocol; JSON or Triton's binary extension).
_TENSOR = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "enum": list(INPUT_NAMES)},
        "datatype": {"type": "string", "enum": ["UINT8", "BYTES"]},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "data": {"type": "array"},
    },
    "required": ["name", "datatype", "shape"],
}
OIP_INFER_BODY = request_body(
    application_json={
        "schema": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "parameters": {"type": "object"},
                "inputs": {"type": "array", "items": _TENSOR},
                "outputs": {"type": "array", "items": {"type": "object"}},
            },
            "required": ["inputs"],
        },
        "example": {
            "inputs": [
                {"name": INPUT_NAMES[1], "datatype": "BYTES", "shape": [1], "data": ["<base64>"]}
            ]
        },
    },
    **{
        "application_octet-stream": {
            "schema": BINARY,
            "description": "Triton's binary tensor extension (Inference-Header-Content-Length)",
        }
    },
)
