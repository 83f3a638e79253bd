"""Typed results of the client: the service's JSON answers as pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Result(BaseModel):
    # A newer service may add fields: an older client keeps working.
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class ClassScore(_Result):
    class_id: int | str
    label: str
    score: float


class ImagePrediction(_Result):
    filename: str | None = None
    classes: list[ClassScore]  # best first


class Prediction(_Result):
    """`/predict` and `/decode_predictions`: per image, its classes best first."""

    model: str
    version: int
    predictions: list[ImagePrediction]


class ModelInfo(_Result):
    name: str
    version: int
    versions: list[int]
    labels: list[str]
    image_size: int
    device: str
    precision: str
    base_weights: dict[str, Any] | None = None
    state: str = "ready"


class LoadState(_Result):
    name: str
    version: int
    state: str  # loading | warming | failed
    step: str
    seconds: float
    error: str | None = None


class Models(_Result):
    """`GET /models`: what serves, and what is still loading (or failed)."""

    default_model: str | None  # None: several models served and none chosen
    models: list[ModelInfo]
    loading: list[LoadState] = []
    scanned: bool = True


class Health(_Result):
    """`/healthz` or `/readyz`: `ok` is False with the reasons when the answer was 503."""

    ok: bool
    status: str
    reasons: list[str] = []
