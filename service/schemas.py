"""Response schemas, named by role; they document the API at /docs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


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
