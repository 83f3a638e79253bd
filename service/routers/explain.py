"""POST /explain and KServe V1's `:explain`: a Grad-CAM heatmap per image."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from service.errors import MethodNotAllowed, NotReady
from service.explain import Explainer, ExplainOptions, parse_v1_explain
from service.native_codec import read_images
from service.openapi_bodies import IMAGE_BODY, TFSERVING_PREDICT_BODY
from service.routers.params import ModelName, Version
from service.schemas import ERRORS
from service.state import PredictorDep, StateDep

router = APIRouter(tags=["explain"])
RESPONSES: dict[int | str, dict[str, Any]] = {**ERRORS, 409: ERRORS[400]}


def get_explainer(state: StateDep) -> Explainer:
    if state.explainer is None:
        raise NotReady("the service is starting; retry shortly (see /readyz)")
    return state.explainer


ExplainerDep = Annotated[Explainer, Depends(get_explainer)]
ClassQuery = Annotated[
    str | None,
    Query(
        alias="class",
        description="the class to explain (label or class index); the predicted one when left out",
    ),
]
ArrayQuery = Annotated[
    bool, Query(description="also answer each heatmap as an [h, w] array of numbers")
]


@router.post("/explain", responses=RESPONSES, openapi_extra=IMAGE_BODY)
async def explain(
    request: Request,
    explainer: ExplainerDep,
    state: StateDep,
    model: Annotated[
        str | None, Query(description="model name; the configured default when left out")
    ] = None,
    target: ClassQuery = None,
    heatmap_array: ArrayQuery = False,
) -> dict[str, Any]:
    """Per image: the explained class, its score, the unknown score, and a Grad-CAM
    heatmap over the picture as a base64 PNG (`heatmap_png`). 409: the version cannot
    explain (exported without the `explain` signature)."""
    items = await read_images(request, state.settings.max_images_per_request)
    options = ExplainOptions(target, heatmap_array)
    return await explainer.explain_images(state.model_for(model), None, items, options)


async def _v1_explain(
    request: Request,
    predictor: PredictorDep,
    explainer: Explainer,
    name: str,
    version: int | None,
) -> dict[str, Any]:
    parsed, options = await predictor.parse_body(await request.body(), parse_v1_explain)
    if parsed.encoded is not None:
        return await explainer.explain_images(name, version, parsed.encoded, options)
    assert parsed.arrays is not None  # parse_predict returns one of the two
    return await explainer.explain_arrays(name, version, parsed.arrays, options)


@router.post("/v1/models/{name}:explain", responses=RESPONSES, openapi_extra=TFSERVING_PREDICT_BODY)
async def v1_explain(
    request: Request, predictor: PredictorDep, explainer: ExplainerDep, name: ModelName
) -> dict[str, Any]:
    """KServe V1's verb: a `:predict` body (plus optional `"class"` and `"heatmap_array"`)
    -> `{"explanations": [...]}`, one per instance."""
    return await _v1_explain(request, predictor, explainer, name, None)


@router.post(
    "/v1/models/{name}/versions/{version}:explain",
    responses=RESPONSES,
    openapi_extra=TFSERVING_PREDICT_BODY,
)
async def v1_explain_version(
    request: Request,
    predictor: PredictorDep,
    explainer: ExplainerDep,
    name: ModelName,
    version: Version,
) -> dict[str, Any]:
    """Like `:explain`, on one loaded version."""
    return await _v1_explain(request, predictor, explainer, name, version)


# Without these, `GET /v1/models/m:explain` would match the status route as a model
# named "m:explain" and answer 404.
@router.get("/v1/models/{name}:explain", include_in_schema=False)
@router.get("/v1/models/{name}/versions/{version}:explain", include_in_schema=False)
async def explain_with_get(name: ModelName) -> Any:
    raise MethodNotAllowed(":explain takes POST with a JSON body; see /docs", allow="POST")
