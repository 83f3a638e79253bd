"""The Open Inference Protocol v2 (KServe v2 / Triton REST): health, metadata, infer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from modelstore.metadata import package_version
from service.errors import NotReady
from service.oip_codec import HEADER_LENGTH, infer_response, model_metadata, parse_infer
from service.openapi_bodies import OIP_INFER_BODY
from service.schemas import ERRORS
from service.state import PredictorDep, RepositoryDep, StateDep

router = APIRouter(prefix="/v2", tags=["open-inference-protocol"])

Version = Annotated[int, Path(ge=1, description="model version (a positive integer)")]


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


@router.get("/models/{name}", responses=ERRORS)
@router.get("/models/{name}/versions/{version}", responses=ERRORS)
async def metadata(repository: RepositoryDep, name: str, version: Version | None = None) -> Any:
    """Inputs, outputs, datatypes and shapes of the model (the latest or the named version)."""
    model = repository.get(name, version)
    return model_metadata(model, [m.version for m in repository.versions(name)])


@router.get("/models/{name}/ready", responses=ERRORS)
@router.get("/models/{name}/versions/{version}/ready", responses=ERRORS)
async def model_ready(repository: RepositoryDep, name: str, version: Version | None = None) -> Any:
    model = repository.get(name, version)  # 404 unknown, 503 still loading
    return {"name": model.name, "version": str(model.version), "ready": True}


@router.post("/models/{name}/infer", responses=ERRORS, openapi_extra=OIP_INFER_BODY)
@router.post(
    "/models/{name}/versions/{version}/infer", responses=ERRORS, openapi_extra=OIP_INFER_BODY
)
async def infer(
    request: Request, predictor: PredictorDep, name: str, version: Version | None = None
) -> Response:
    """`BYTES` encoded images or `UINT8` pixels in, `FP32` probabilities out."""
    body, header_length = await request.body(), request.headers.get(HEADER_LENGTH)
    parsed = await predictor.off_loop(
        lambda: parse_infer(body, header_length), "parsing the infer request"
    )
    if parsed.encoded is not None:
        result = await predictor.predict_images(name, version, parsed.encoded)
    else:
        assert parsed.images is not None  # parse_infer returns one of the two
        result = await predictor.predict_arrays(name, version, parsed.images)
    content, headers = infer_response(result.model, parsed, result.probabilities)
    return Response(content, headers=headers, media_type=headers["Content-Type"])
