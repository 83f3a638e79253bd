"""The Open Inference Protocol v2 (KServe v2 / Triton REST): health, metadata, infer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from modelstore.metadata import package_version
from service.errors import NotReady
from service.model_version import ModelVersion
from service.oip_codec import HEADER_LENGTH, infer_response, model_metadata, parse_infer
from service.openapi_bodies import OIP_INFER_BODY
from service.routers.params import ModelName, Version
from service.schemas import ERRORS
from service.state import PredictorDep, RepositoryDep, StateDep

router = APIRouter(prefix="/v2", tags=["open-inference-protocol"])


@router.get("")
async def server_metadata() -> dict[str, Any]:
    """Server name, version and protocol extensions."""
    return {
        "name": "vgg-transfer-service",
        "version": package_version(),
        "extensions": ["binary_tensor_data"],
    }


@router.get("/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", responses={503: ERRORS[503]})
async def ready(state: StateDep) -> dict[str, bool]:
    reasons = state.not_ready_reasons()
    if reasons:
        raise NotReady("not ready: " + "; ".join(reasons))
    return {"ready": True}


# Each route with and without `/versions/{version}`: one function for both would make
# `version` a nullable path parameter there and an undocumented query parameter here.
@router.get("/models/{name}", responses=ERRORS)
async def metadata(repository: RepositoryDep, name: ModelName) -> Any:
    """Inputs, outputs, datatypes and shapes of the model's latest version."""
    model = repository.get(name)
    return model_metadata(model, [m.version for m in repository.versions(name)])


@router.get("/models/{name}/versions/{version}", responses=ERRORS)
async def metadata_version(repository: RepositoryDep, name: ModelName, version: Version) -> Any:
    model = repository.get(name, version)
    return model_metadata(model, [m.version for m in repository.versions(name)])


def _ready(model: ModelVersion) -> dict[str, Any]:
    return {"name": model.name, "version": str(model.version), "ready": True}


@router.get("/models/{name}/ready", responses=ERRORS)
async def model_ready(repository: RepositoryDep, name: ModelName) -> Any:
    return _ready(repository.get(name))  # 404 unknown, 503 still loading


@router.get("/models/{name}/versions/{version}/ready", responses=ERRORS)
async def model_version_ready(repository: RepositoryDep, name: ModelName, version: Version) -> Any:
    return _ready(repository.get(name, version))


async def _infer(
    request: Request, predictor: PredictorDep, name: str, version: int | None
) -> Response:
    body, header_length = await request.body(), request.headers.get(HEADER_LENGTH)
    parsed = await predictor.off_loop(
        lambda: parse_infer(body, header_length), "parsing the infer request"
    )
    if parsed.encoded is not None:
        result = await predictor.predict_images(name, version, parsed.encoded)
    else:
        assert parsed.images is not None  # parse_infer returns one of the two
        result = await predictor.predict_arrays(name, version, parsed.images)
    content, headers = infer_response(
        result.model, parsed, result.probabilities, result.unknown_scores
    )
    return Response(content, headers=headers, media_type=headers["Content-Type"])


# With binary outputs asked for (Triton's binary tensor extension) the answer is a JSON
# header followed by raw tensors, sent as application/octet-stream.
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The inference response: JSON, or with binary_data outputs a JSON "
        "header of Inference-Header-Content-Length bytes followed by the raw tensors",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    **ERRORS,
    # an `unknown_score`/`unknown` output asked of a version without the unknown scorer
    409: ERRORS[400],
}


@router.post("/models/{name}/infer", responses=INFER_RESPONSES, openapi_extra=OIP_INFER_BODY)
async def infer(request: Request, predictor: PredictorDep, name: ModelName) -> Response:
    """`BYTES` encoded images or `UINT8` pixels in, `FP32` probabilities out.

    JSON, or Triton's binary tensor extension: a JSON header of
    `Inference-Header-Content-Length` bytes, then the raw tensors.
    """
    return await _infer(request, predictor, name, None)


@router.post(
    "/models/{name}/versions/{version}/infer",
    responses=INFER_RESPONSES,
    openapi_extra=OIP_INFER_BODY,
)
async def infer_version(
    request: Request, predictor: PredictorDep, name: ModelName, version: Version
) -> Response:
    """Like `infer`, on one loaded version (the latest or a pinned one)."""
    return await _infer(request, predictor, name, version)
