"""Response schemas, named by role; they document the API at /docs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ClassScore(BaseModel):
    class_id: int | str = Field(description="class index, or the WordNet id for vgg16_imagenet")
    label: str
    score: float


class ImagePrediction(BaseModel):
    filename: str | None
    label: str = Field(
        description="the answer: the best class, or 'unknown' when abstain=true and flagged"
    )
    classes: list[ClassScore] = Field(description="best first")
    unknown_score: float | None = Field(
        None,
        description="how unlike the training photos the image is (higher: less like them); "
        "null for a version without an unknown scorer or for client-sent scores",
    )
    unknown: bool | None = Field(
        None, description="unknown_score is above the version's calibrated threshold"
    )


class PredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[ImagePrediction]


class MultiPredictResponse(BaseModel):
    """`/predict?models=a,b`: one answer per model named, in the order asked."""

    results: list[PredictResponse]


class VersionServing(BaseModel):
    """How one loaded version runs."""

    version: int
    served: Literal["shared-base", "whole"] = Field(
        description="shared-base: its head on a base shared with every version of the same "
        "base identity; whole: its own complete SavedModel"
    )
    base: str | None = Field(None, description="the shared base's identity key")
    whole_reason: str | None = Field(None, description="why it is served whole")


class SharedBaseInfo(BaseModel):
    """A loaded shared base and the versions running on it."""

    base: str
    identity: dict[str, Any]
    loaded_from: str = Field(description="the version folder its weights were loaded from")
    versions: list[str] = Field(description="name:version of each version on it")


class ModelInfo(BaseModel):
    name: str
    version: int
    versions: list[int]
    labels: list[str]
    image_size: int
    device: str
    precision: str = Field(description="fp32, bf16, fp16 or int8: what the runtime computes in")
    base_weights: dict[str, Any] | None
    served: Literal["shared-base", "whole"] = Field(
        "whole", description="how the latest version runs (see `serving` for each version)"
    )
    serving: list[VersionServing] = []
    unknown_scorer: dict[str, Any] | None = Field(
        None,
        description="method, threshold and calibration of the version's unknown score; "
        "null: this version has none (its answers carry null unknown fields and it cannot "
        "explain)",
    )
    state: Literal["ready"] = "ready"


class LoadStateInfo(BaseModel):
    """A version that does not serve yet (loading, warming) or failed to load."""

    name: str
    version: int
    state: Literal["loading", "warming", "failed"]
    step: str = Field(description="what it does now, e.g. 'warm-up batch 8, 4 of 16'")
    seconds: float = Field(description="since loading began")
    error: str | None = Field(None, description="why it failed to load")


class ModelsResponse(BaseModel):
    default_model: str | None = Field(
        description="the model of requests that name none; null: several models and none "
        "chosen (VGGSVC_DEFAULT_MODEL), so requests must name one"
    )
    models: list[ModelInfo] = Field(description="the models that serve (state ready)")
    loading: list[LoadStateInfo] = Field(
        [], description="versions being loaded or warmed up now, and versions that failed"
    )
    scanned: bool = Field(
        True, description="false until the first scan of the models folder has finished"
    )
    shared_bases: list[SharedBaseInfo] = Field(
        [], description="bases loaded once and shared by several versions"
    )


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
