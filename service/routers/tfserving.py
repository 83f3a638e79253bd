"""TensorFlow Serving's REST API: predict, model status, model metadata."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.errors import BadRequest
from service.schemas import ERRORS
from service.state import StateDep
from service.tfserving import model_metadata, parse_predict, parse_version, version_status

router = APIRouter(prefix="/v1/models", tags=["tensorflow-serving"])


async def _predict(request: Request, state: StateDep, name: str, version: str | None) -> Any:
    assert state.predictor is not None
    number = parse_version(version)
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    parsed = parse_predict(body)
    if parsed.encoded is not None:
        result = await state.predictor.predict_images(name, number, parsed.encoded)
    else:
        assert parsed.arrays is not None
        result = await state.predictor.predict_arrays(name, number, parsed.arrays)
    rows = result.probabilities.tolist()
    return {"outputs": rows} if parsed.columnar else {"predictions": rows}


@router.post("/{name}:predict", responses=ERRORS)
async def predict(request: Request, state: StateDep, name: str) -> Any:
    """`{"instances": [{"b64": "..."}]}` -> `{"predictions": [[p, ...], ...]}`."""
    return await _predict(request, state, name, None)


@router.post("/{name}/versions/{version}:predict", responses=ERRORS)
async def predict_version(request: Request, state: StateDep, name: str, version: str) -> Any:
    return await _predict(request, state, name, version)


@router.get("/{name}", responses=ERRORS)
async def status(state: StateDep, name: str) -> Any:
    """Every loaded version of the model, its state and the device it runs on."""
    assert state.repository is not None
    state.repository.get(name)  # 404 when unknown
    return version_status(state.repository.versions(name))


@router.get("/{name}/versions/{version}", responses=ERRORS)
async def status_version(state: StateDep, name: str, version: str) -> Any:
    assert state.repository is not None
    return version_status([state.repository.get(name, parse_version(version))])


@router.get("/{name}/metadata", responses=ERRORS)
async def metadata(state: StateDep, name: str) -> Any:
    """The serving signature (TF Serving's signature_def shape), labels and input size."""
    assert state.repository is not None
    return model_metadata(state.repository.get(name))


@router.get("/{name}/versions/{version}/metadata", responses=ERRORS)
async def metadata_version(state: StateDep, name: str, version: str) -> Any:
    assert state.repository is not None
    return model_metadata(state.repository.get(name, parse_version(version)))
