"""POST /predict and POST /decode_predictions (one model, or several with `models=a,b,c`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from service.errors import Unprocessable
from service.native_codec import media_type, parse_scores, prediction_body, read_images
from service.openapi_bodies import DECODE_PREDICTIONS_BODY, IMAGE_BODY
from service.predictor import Prediction
from service.routers.params import one_value_per_parameter
from service.schemas import ERRORS, MultiPredictResponse, PredictResponse
from service.state import PredictorDep, StateDep

router = APIRouter(tags=["predict"], dependencies=[Depends(one_value_per_parameter)])

ModelQuery = Annotated[
    str | None, Query(description="model name; the configured default when left out")
]
ModelsQuery = Annotated[
    str | None,
    Query(
        description="several model names, comma-separated (instead of `model`): each answers "
        "every image; models on one shared base cost one base pass per image",
        examples=["car_truck,vgg16_imagenet"],
    ),
]
AbstainQuery = Annotated[
    bool,
    Query(
        description="answer the label 'unknown' for an image the model's unknown score "
        "flags as unlike its training photos"
    ),
]


def _model_headers(response: Response, name: str, version: int) -> None:
    response.headers["X-Model-Name"] = name
    response.headers["X-Model-Version"] = str(version)


async def _predict(
    request: Request,
    response: Response,
    predictor: PredictorDep,
    state: StateDep,
    model: str | None,
    top: int | None,
    abstain: bool = False,
    models: str | None = None,
) -> dict[str, Any]:
    if models is not None:
        if model is not None:
            # 422, not 400: the request is well formed, its two parameters disagree.
            raise Unprocessable("send either 'model' or 'models', not both")
        names = predictor.model_names(models)
        items = await read_images(request, state.settings.max_images_per_request)
        results = await predictor.predict_many(names, items)
        response.headers["X-Model-Name"] = ",".join(r.model.name for r in results)
        response.headers["X-Model-Version"] = ",".join(str(r.model.version) for r in results)
        filenames = [item.filename for item in items]
        return {
            "results": [
                prediction_body(r.model, r.probabilities, filenames, top, r.unknown_scores, abstain)
                for r in results
            ]
        }
    items = await read_images(request, state.settings.max_images_per_request)
    result: Prediction = await predictor.predict_images(state.model_for(model), None, items)
    _model_headers(response, result.model.name, result.model.version)
    return prediction_body(
        result.model,
        result.probabilities,
        [item.filename for item in items],
        top,
        result.unknown_scores,
        abstain,
    )


@router.post(
    "/predict",
    response_model=PredictResponse | MultiPredictResponse,
    responses=ERRORS,
    openapi_extra=IMAGE_BODY,
)
async def predict(
    request: Request,
    response: Response,
    predictor: PredictorDep,
    state: StateDep,
    model: ModelQuery = None,
    abstain: AbstainQuery = False,
    models: ModelsQuery = None,
) -> dict[str, Any]:
    """Every class with its score, best first, and the unknown score, for each image
    (per model with `models`)."""
    return await _predict(request, response, predictor, state, model, None, abstain, models)


@router.post(
    "/decode_predictions",
    response_model=PredictResponse | MultiPredictResponse,
    responses=ERRORS,
    openapi_extra=DECODE_PREDICTIONS_BODY,
)
async def decode_predictions(
    request: Request,
    response: Response,
    predictor: PredictorDep,
    state: StateDep,
    model: ModelQuery = None,
    top: Annotated[int, Query(ge=1, description="classes per image")] = 5,
    models: ModelsQuery = None,
) -> dict[str, Any]:
    """Top-K classes per image, like `keras.applications...decode_predictions`.

    Also takes JSON `{"predictions": [[score, ...], ...]}` and decodes those scores
    (for one model: scores belong to one model's classes).
    """
    if media_type(request) != "application/json":
        return await _predict(request, response, predictor, state, model, top, models=models)
    if models is not None:
        raise Unprocessable("decoding sent scores takes one 'model', not 'models'")
    model_version = predictor.repository.get(state.model_for(model))
    scores = await predictor.parse_body(
        await request.body(),
        lambda document: parse_scores(model_version, document, predictor.check_count),
    )
    _model_headers(response, model_version.name, model_version.version)
    return prediction_body(model_version, scores, [None] * len(scores), top)
