"""TensorFlow Serving's REST API: predict, model status, model metadata."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.errors import BadRequest
from service.schemas import ERRORS
from service.state import PredictorDep, RepositoryDep
from service.tfserving_codec import model_metadata, parse_predict, parse_version, version_status

router = APIRouter(prefix="/v1/models", tags=["tensorflow-serving"])


async def _predict(
    request: Request, predictor: PredictorDep, name: str, version: str | None
) -> Any:
    number = parse_version(version)
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    parsed = parse_predict(body)
    if parsed.encoded is not None:
        result = await predictor.predict_images(name, number, parsed.encoded)
    else:
        assert parsed.arrays is not None  # parse_predict returns one of the two
        result = await predictor.predict_arrays(name, number, parsed.arrays)
    rows = result.probabilities.tolist()
    return {"outputs": rows} if parsed.columnar else {"predictions": rows}


@router.post("/{name}:predict", responses=ERRORS)
async def predict(request: Request, predictor: PredictorDep, name: str) -> Any:
    """`{"instances": [{"b64": "..."}]}` -> `{"predictions": [[p, ...], ...]}`."""
    return await _predict(request, predictor, name, None)


@router.post("/{name}/versions/{version}:predict", responses=ERRORS)
async def predict_version(
    request: Request, predictor: PredictorDep, name: str, version: str
) -> Any:
    return await _predict(request, predictor, name, version)


@router.get("/{name}", responses=ERRORS)
async def status(repository: RepositoryDep, name: str) -> Any:
    """Every loaded version of the model, its state and the device it runs on."""
    repository.get(name)  # 404 when unknown
    return version_status(repository.versions(name))


@router.get("/{name}/versions/{version}", responses=ERRORS)
async def status_version(repository: RepositoryDep, name: str, version: str) -> Any:
    return version_status([repository.get(name, parse_version(version))])


@router.get("/{name}/metadata", responses=ERRORS)
async def metadata(repository: RepositoryDep, name: str) -> Any:
    """The serving signature (TF Serving's signature_def shape), labels and input size."""
    return model_metadata(repository.get(name))


@router.get("/{name}/versions/{version}/metadata", responses=ERRORS)
async def metadata_version(repository: RepositoryDep, name: str, version: str) -> Any:
    return model_metadata(repository.get(name, parse_version(version)))
