"""POST /predict and POST /decode_predictions."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from service.errors import BadRequest, PayloadTooLarge
from service.inference import check_scores, prediction_body
from service.request_images import IMAGE_BODY, media_type, read_images
from service.schemas import ERRORS, PredictResponse
from service.state import AppState, StateDep

router = APIRouter(tags=["predict"])

ModelQuery = Annotated[
    str | None, Query(description="model name; the configured default when left out")
]


async def _predict(
    request: Request, response: Response, state: AppState, model: str | None, top: int | None
) -> dict[str, Any]:
    assert state.predictor is not None
    items = await read_images(request, state.settings.max_images_per_request)
    result = await state.predictor.predict_images(
        model or state.settings.default_model, None, items
    )
    response.headers["X-Model-Name"] = result.model.name
    response.headers["X-Model-Version"] = str(result.model.version)
    return prediction_body(
        result.model, result.probabilities, [item.filename for item in items], top
    )


@router.post("/predict", response_model=PredictResponse, responses=ERRORS, openapi_extra=IMAGE_BODY)
async def predict(
    request: Request, response: Response, state: StateDep, model: ModelQuery = None
) -> dict[str, Any]:
    """Every class with its score, best first, for each image."""
    return await _predict(request, response, state, model, None)


@router.post(
    "/decode_predictions",
    response_model=PredictResponse,
    responses=ERRORS,
    openapi_extra=IMAGE_BODY,
)
async def decode_predictions(
    request: Request,
    response: Response,
    state: StateDep,
    model: ModelQuery = None,
    top: Annotated[int, Query(ge=1, description="classes per image")] = 5,
) -> dict[str, Any]:
    """Top-K classes per image, like `keras.applications...decode_predictions`.

    Also takes JSON `{"predictions": [[score, ...], ...]}` and decodes those scores.
    """
    if media_type(request) != "application/json":
        return await _predict(request, response, state, model, top)
    assert state.repository is not None
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict) or "predictions" not in body:
        raise BadRequest('the JSON body must look like {"predictions": [[score, ...], ...]}')
    version = state.repository.get(model or state.settings.default_model)
    rows = body["predictions"]
    # The same per-request limit as for images (413); the work runs off the event loop.
    limit = state.settings.max_images_per_request
    if isinstance(rows, list) and len(rows) > limit:
        raise PayloadTooLarge(
            f"{len(rows)} rows of predictions in one request; the limit is {limit}"
        )

    def decode() -> dict[str, Any]:
        scores = check_scores(version, rows)
        return prediction_body(version, scores, [None] * len(scores), top)

    result = await asyncio.to_thread(decode)
    response.headers["X-Model-Name"] = version.name
    response.headers["X-Model-Version"] = str(version.version)
    return result
