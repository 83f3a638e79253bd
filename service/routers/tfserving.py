"""TensorFlow Serving's REST API (KServe v1): predict, model status, model metadata."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.errors import MethodNotAllowed
from service.openapi_bodies import TFSERVING_PREDICT_BODY
from service.routers.params import ModelName, Version
from service.schemas import ERRORS
from service.state import PredictorDep, RepositoryDep
from service.tfserving_codec import model_metadata, parse_predict, predict_body, version_status

router = APIRouter(prefix="/v1/models", tags=["tensorflow-serving"])


async def _predict(
    request: Request, predictor: PredictorDep, name: str, version: int | None
) -> Any:
    parsed = await predictor.parse_body(await request.body(), parse_predict)
    if parsed.encoded is not None:
        result = await predictor.predict_images(name, version, parsed.encoded)
    else:
        assert parsed.arrays is not None  # parse_predict returns one of the two
        result = await predictor.predict_arrays(name, version, parsed.arrays)
    return predict_body(parsed, result)


# 409: `predict_with_unknown` asked of a version exported without the unknown scorer.
PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {**ERRORS, 409: ERRORS[400]}


@router.post("/{name}:predict", responses=PREDICT_RESPONSES, openapi_extra=TFSERVING_PREDICT_BODY)
async def predict(request: Request, predictor: PredictorDep, name: ModelName) -> Any:
    """`{"instances": [{"b64": "..."}]}` -> `{"predictions": [[p, ...], ...]}`."""
    return await _predict(request, predictor, name, None)


@router.post(
    "/{name}/versions/{version}:predict",
    responses=PREDICT_RESPONSES,
    openapi_extra=TFSERVING_PREDICT_BODY,
)
async def predict_version(
    request: Request, predictor: PredictorDep, name: ModelName, version: Version
) -> Any:
    """Like `:predict`, on one loaded version (the latest or a pinned one)."""
    return await _predict(request, predictor, name, version)


# Without these, `GET /v1/models/m:predict` would match the status route below as a
# model named "m:predict" and answer 404.
@router.get("/{name}:predict", include_in_schema=False)
@router.get("/{name}/versions/{version}:predict", include_in_schema=False)
async def predict_with_get(name: ModelName) -> Any:
    raise MethodNotAllowed(":predict takes POST with a JSON body; see /docs", allow="POST")


@router.get("/{name}", responses=ERRORS)
async def status(repository: RepositoryDep, name: ModelName) -> Any:
    """Every version of the model: AVAILABLE (with its device), LOADING (with the warm-up
    step it is at) or END (failed to load, with the error)."""
    loaded, loading = repository.versions(name), repository.load_states(name)
    if not loaded and not loading:
        repository.get(name)  # raises: 404 unknown, 503 before the first scan
    return version_status(loaded, loading)


@router.get("/{name}/versions/{version}", responses=ERRORS)
async def status_version(repository: RepositoryDep, name: ModelName, version: Version) -> Any:
    loading = [s for s in repository.load_states(name) if s.version == version]
    if loading and version not in {m.version for m in repository.versions(name)}:
        return version_status([], loading)
    return version_status([repository.get(name, version)])


@router.get("/{name}/metadata", responses=ERRORS)
async def metadata(repository: RepositoryDep, name: ModelName) -> Any:
    """The serving signature (TF Serving's signature_def shape), labels and input size."""
    return model_metadata(repository.get(name))


@router.get("/{name}/versions/{version}/metadata", responses=ERRORS)
async def metadata_version(repository: RepositoryDep, name: ModelName, version: Version) -> Any:
    return model_metadata(repository.get(name, version))
