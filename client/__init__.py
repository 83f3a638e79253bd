"""A small Python client of the service's HTTP API (sync and async, on httpx).

    from client import Client
    with Client("http://127.0.0.1:8000") as api:
        print(api.predict("photo.jpg").predictions[0].classes[0])

It imports nothing of `service` or `training` (checked by `lint-imports`): only
httpx and pydantic, so it can be used from any program that talks to a deployment.
"""

from client.api import AsyncClient, Client
from client.retry import ApiError, RetryPolicy
from client.types import (
    ClassScore,
    Health,
    ImagePrediction,
    LoadState,
    ModelInfo,
    Models,
    Prediction,
)

__all__ = [
    "ApiError",
    "AsyncClient",
    "ClassScore",
    "Client",
    "Health",
    "ImagePrediction",
    "LoadState",
    "ModelInfo",
    "Models",
    "Prediction",
    "RetryPolicy",
]
