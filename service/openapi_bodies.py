"""OpenAPI request bodies of the routes that read their body themselves (off the event loop).

FastAPI cannot infer these (the routes take `Request`), so they are spelled out
here, once, for /docs, for clients generated from /openapi.json, and for the
schemathesis suite (tests/service/test_service_openapi_fuzz.py).
"""

from __future__ import annotations

from typing import Any

from modelstore.contract import BYTES_INPUT_NAME, INPUT_NAME, INPUT_NAMES, SIGNATURES
from service.oip_codec import INT64_MAX, OUTPUT_NAMES, TOP_LABELS, TOP_SCORES


def request_body(content: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` for a required body of these media types."""
    return {"requestBody": {"required": True, "content": content}}


# OpenAPI request bodies of routes that read the body themselves (parsed off the event loop).
# They are as strict as the parsers: a body these schemas accept is never refused as
# malformed (400); only what a schema cannot say (decodable image, input size) is 413/415/422.
# A real 1x1 PNG, so the documented examples work when sent as they are.
EXAMPLE_PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGM4IScHAAK2AQU0pnWqAAAAAElFTkSuQmCC"
)
_BASE64 = {"type": "string", "format": "byte", "description": "base64 of an encoded image"}
_B64 = {"type": "object", "properties": {"b64": _BASE64}, "required": ["b64"]}
_PIXELS = {
    "type": "array",
    "description": "uint8 pixels [height][width][3] at the model's input size",
    "minItems": 1,
    "items": {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "array",
            "minItems": 3,
            "maxItems": 3,
            "items": {"type": "integer", "minimum": 0, "maximum": 255},
        },
    },
}


def _named(schema: dict[str, Any]) -> dict[str, Any]:
    """`{"images": X}` or `{"image_bytes": X}`: one input, named."""
    return {
        "type": "object",
        "properties": {name: schema for name in INPUT_NAMES},
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": False,
    }


def _list_of(instance: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": {"anyOf": [instance, _named(instance)]}, "minItems": 1}


# One request holds either encoded images or pixel arrays, never both.
_INSTANCES = {"anyOf": [_list_of(_B64), _list_of(_PIXELS)]}
TFSERVING_PREDICT_BODY = request_body(
    {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "signature_name": {"type": "string", "enum": list(SIGNATURES)},
                    "instances": _INSTANCES,
                    "inputs": {"anyOf": [_INSTANCES, _named(_INSTANCES)]},
                },
                # Row or columnar format: exactly one of the two.
                "oneOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
            },
            "example": {"instances": [{"b64": EXAMPLE_PNG_B64}]},
        }
    }
)
SCORES_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "predictions": {
            "type": "array",
            "description": "rows of class scores, one row per image, in the model's label order",
            "items": {"type": "array", "items": {"type": "number"}},
        }
    },
    "required": ["predictions"],
}

# Image bodies carry no example: bytes do not fit in a JSON document, and the field made
# for them (`externalValue`) is fetched by Swagger UI, which shows a red "Resolver error"
# for a data: URI and cannot send what it fetched anyway. /docs offers a file picker for
# `format: binary` instead, so what a person picks is what is sent.
_IMAGE_FILE = {
    "type": "string",
    "format": "binary",
    "description": "an image file (JPEG, PNG, WebP, ...); repeat the field for several images",
}

# OpenAPI description of the two accepted bodies (the route reads the request itself).
IMAGE_BODY = request_body(
    {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": _IMAGE_FILE},
                "required": ["file"],
            },
        },
        "application/octet-stream": {
            "schema": {
                "type": "string",
                "format": "binary",
                "minLength": 1,
                "description": "the bytes of one image file",
            },
        },
    }
)


DECODE_PREDICTIONS_BODY = request_body(
    {
        **IMAGE_BODY["requestBody"]["content"],
        "application/json": {
            "schema": SCORES_BODY_SCHEMA,
            "example": {"predictions": [[0.1, 0.9]]},
        },
    }
)


def _tensor(
    name: str, datatype: str, shape: dict[str, Any], data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "name": {"const": name},
            "datatype": {"const": datatype},
            "shape": shape,
            "data": data,
        },
        "required": ["name", "datatype", "shape", "data"],
    }


# Positive: a request without an image is refused (400).
_DIM = {"type": "integer", "minimum": 1, "maximum": INT64_MAX}
_OIP_TENSORS = [
    _tensor(
        INPUT_NAME,
        "UINT8",
        {
            "type": "array",
            "items": _DIM,
            "minItems": 4,
            "maxItems": 4,
            "description": "[n, size, size, 3]",
        },
        {
            "type": "array",
            "minItems": 1,
            "description": "n * size * size * 3 integers 0-255, flat or nested",
        },
    ),
    _tensor(
        BYTES_INPUT_NAME,
        "BYTES",
        {"type": "array", "items": _DIM, "minItems": 1, "maxItems": 1, "description": "[n]"},
        {"type": "array", "items": _BASE64, "minItems": 1},
    ),
]
_NEEDS_TOP_K = {
    "properties": {"name": {"enum": [TOP_LABELS, TOP_SCORES]}},
    "required": ["name"],
}
OIP_INFER_BODY = request_body(
    {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    # null is read as absent, like a missing key (the codec's `or {}`).
                    "parameters": {
                        "type": ["object", "null"],
                        "properties": {
                            "top_k": {"type": ["integer", "null"], "minimum": 1},
                            "binary_data_output": {"type": "boolean"},
                        },
                    },
                    "inputs": {
                        "type": "array",
                        "items": {"oneOf": _OIP_TENSORS},
                        "minItems": 1,
                        "maxItems": 1,
                    },
                    "outputs": {
                        "type": ["array", "null"],
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string", "enum": list(OUTPUT_NAMES)},
                                "parameters": {
                                    "type": ["object", "null"],
                                    "properties": {"binary_data": {"type": "boolean"}},
                                },
                            },
                            "required": ["name"],
                        },
                    },
                },
                "required": ["inputs"],
                # The top-k outputs exist only when the request asks for top_k.
                "if": {
                    "properties": {"outputs": {"contains": _NEEDS_TOP_K}},
                    "required": ["outputs"],
                },
                "then": {
                    "properties": {
                        "parameters": {
                            "type": "object",
                            "properties": {"top_k": {"type": "integer"}},
                            "required": ["top_k"],
                        }
                    },
                    "required": ["parameters"],
                },
            },
            "example": {
                "inputs": [
                    {
                        "name": BYTES_INPUT_NAME,
                        "datatype": "BYTES",
                        "shape": [1],
                        "data": [EXAMPLE_PNG_B64],
                    }
                ]
            },
        },
    }
)
# Triton's binary tensor extension is left out: its framing (a JSON header of
# Inference-Header-Content-Length bytes, then raw tensors) is not expressible here.
