"""Response schemas, named by role; they document the API at /docs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from modelstore.contract import INPUT_NAMES, SIGNATURES


class ClassScore(BaseModel):
    class_id: int | str = Field(description="class index, or the WordNet id for vgg16_imagenet")
    label: str
    score: float


class ImagePrediction(BaseModel):
    filename: str | None
    classes: list[ClassScore] = Field(description="best first")


class PredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[ImagePrediction]


class ModelInfo(BaseModel):
    name: str
    version: int
    versions: list[int]
    labels: list[str]
    image_size: int
    device: str
    precision: str = Field(description="fp32, bf16 or fp16: what the runtime computes in")
    base_weights: dict[str, Any] | None


class ModelsResponse(BaseModel):
    default_model: str
    models: list[ModelInfo]


class ErrorResponse(BaseModel):
    error: str
    status: int


class HealthResponse(BaseModel):
    status: str
    reasons: list[str] = []


class ReadyError(ErrorResponse):
    reasons: list[str]


class ReloadResponse(BaseModel):
    loaded: dict[str, list[int]]
    failures: dict[str, str]


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 404, 413, 415, 422, 503, 504)
}


# OpenAPI request bodies of routes that read the body themselves (parsed off the event loop).
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
TFSERVING_PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "signature_name": {
                            "type": "string",
                            "enum": list(SIGNATURES),
                        },
                        "instances": {"type": "array", "items": _INSTANCE, "minItems": 1},
                        "inputs": {
                            "anyOf": [{"type": "array", "items": _INSTANCE}, {"type": "object"}]
                        },
                    },
                },
                "example": {"instances": [{"b64": "<base64 of a JPEG>"}]},
            }
        },
    }
}
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

# OpenAPI description of the two accepted bodies (the route reads the request itself).
IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                    "required": ["file"],
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


DECODE_PREDICTIONS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            **IMAGE_BODY["requestBody"]["content"],
            "application/json": {
                "schema": SCORES_BODY_SCHEMA,
                "example": {"predictions": [[0.1, 0.9]]},
            },
        },
    }
}
OIP_INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string", "enum": list(INPUT_NAMES)},
                                    "datatype": {"type": "string", "enum": ["UINT8", "BYTES"]},
                                    "shape": {"type": "array", "items": {"type": "integer"}},
                                    "data": {"type": "array"},
                                },
                                "required": ["name", "datatype", "shape"],
                            },
                        },
                        "outputs": {"type": "array", "items": {"type": "object"}},
                    },
                    "required": ["inputs"],
                },
                "example": {
                    "inputs": [
                        {
                            "name": "image_bytes",
                            "datatype": "BYTES",
                            "shape": [1],
                            "data": ["<base64 of a JPEG>"],
                        }
                    ]
                },
            },
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "Triton's binary tensor extension (Inference-Header-Content-Length)",
            },
        },
    }
}
