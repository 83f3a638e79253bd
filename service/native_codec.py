"""The native protocol of `/predict` and `/decode_predictions`: decode requests, encode answers.

Like `service.tfserving_codec` and `service.oip_codec`, a route reads as three
calls: decode (`read_images`, or `parse_scores` for a JSON body of scores),
infer (`Predictor`), encode (`prediction_body`). Images come as multipart files
(field `file`, repeatable) or as a raw body.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from service.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMedia
from service.model_version import ModelVersion
from service.predictor import ImageInput
from service.unknown_outputs import answer_label, unknown_fields

FILE_FIELDS = ("file", "files")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_images(request: Request, max_images: int) -> list[ImageInput]:
    kind = media_type(request)
    if kind == "multipart/form-data":
        # The body was already capped in bytes; the file count is checked here (413).
        try:
            form = await request.form(max_files=max_images, max_fields=max_images + 16)
        except HTTPException as exc:
            if "Too many files" in str(exc.detail):
                raise PayloadTooLarge(f"more than {max_images} images in one request") from exc
            raise
        uploads = [
            value
            for key, value in form.multi_items()
            if key in FILE_FIELDS and isinstance(value, UploadFile)
        ]
        if len(uploads) > max_images:
            raise PayloadTooLarge(f"more than {max_images} images in one request")
        if not uploads:
            raise BadRequest("the multipart body has no file in field 'file'")
        return [ImageInput(await upload.read(), upload.filename) for upload in uploads]
    if kind == "application/x-www-form-urlencoded":
        raise BadRequest("send images as multipart/form-data (field 'file') or as a raw body")
    if kind == "application/json":
        raise UnsupportedMedia(
            "this endpoint takes images (multipart field 'file' or a raw image body), not JSON"
        )
    body = await request.body()
    if not body:
        raise BadRequest("the request body is empty; send an image")
    return [ImageInput(body, None)]


def ranked_classes(
    model: ModelVersion, scores: Sequence[float], top: int | None = None
) -> list[dict[str, Any]]:
    """Every class (or the best `top`) as `{class_id, label, score}`, best first."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    if top is not None:
        order = order[:top]
    return [
        {"class_id": model.class_ids[i], "label": model.labels[i], "score": float(scores[i])}
        for i in order
    ]


def check_scores(
    model: ModelVersion, rows: Any, check_count: Callable[[int, str], None] | None = None
) -> np.ndarray:
    """Validate client-sent scores for `decode_predictions` (width, numbers, finite).

    `check_count` (the per-request limit, 413) runs once the rows are known to be lists
    of numbers: a malformed body is a 422 whatever its length, as the OpenAPI schema says.
    """
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        raise Unprocessable("'predictions' must be a non-empty list of lists of scores")
    width = len(model.labels)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise Unprocessable(
                f"predictions[{i}] has {len(row)} scores; {model.name} has {width} classes"
            )
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in row):
            raise Unprocessable(f"predictions[{i}] must hold numbers only")
    if check_count is not None:
        check_count(len(rows), "rows of predictions")
    try:
        scores = np.asarray(rows, dtype=np.float64)
    except OverflowError as exc:  # a JSON integer too large for a float
        raise Unprocessable("predictions hold a number too large for a float") from exc
    bad = ~np.isfinite(scores).all(axis=1)
    if bad.any():
        raise Unprocessable(f"predictions[{int(bad.argmax())}] holds NaN or infinite scores")
    return scores


def prediction_body(
    model: ModelVersion,
    probabilities: np.ndarray,
    filenames: Sequence[str | None],
    top: int | None = None,
    unknown_scores: np.ndarray | None = None,
    abstain: bool = False,
) -> dict[str, Any]:
    """The JSON of /predict and /decode_predictions: per image, its answer (`label`), its
    classes best first, and its unknown score (null for a version without a scorer).

    `abstain`: a flagged image is answered with the label "unknown".
    """
    scores: Sequence[float | None] = (
        [None] * len(filenames) if unknown_scores is None else unknown_scores.tolist()
    )
    predictions = []
    for filename, row, score in zip(filenames, probabilities, scores, strict=True):
        classes = ranked_classes(model, row.tolist(), top)
        fields = unknown_fields(model.model, score)
        label = answer_label(classes[0]["label"], fields, abstain)
        predictions.append({"filename": filename, "label": label, "classes": classes, **fields})
    return {"model": model.name, "version": model.version, "predictions": predictions}


def parse_scores(
    model: ModelVersion, document: Any, check_count: Callable[[int, str], None]
) -> np.ndarray:
    """`{"predictions": [[score, ...], ...]}` -> validated scores (`decode_predictions`).

    `check_count` applies the per-request limit, as for images (413).
    """
    if not isinstance(document, dict) or "predictions" not in document:
        raise BadRequest('the JSON body must look like {"predictions": [[score, ...], ...]}')
    return check_scores(model, document["predictions"], check_count)
