"""TensorFlow Serving's REST shapes: parse predict bodies, build status and metadata.

No FastAPI here. Accepted predict bodies (one input, so both of TF Serving's
formats reduce to a list of images):
- row format: `{"instances": [<instance>, ...]}`
- columnar format: `{"inputs": [<instance>, ...]}` or `{"inputs": {"images": [...]}}`
where an instance is `{"b64": "<base64 image bytes>"}`, the named form
`{"images": {"b64": ...}}` (or `image_bytes`, the input of `serve_bytes`), or a
uint8 pixel array `[[[r, g, b], ...], ...]` at the model's input size. Encoded
images go through `imaging.load_image` like every other request.

`"signature_name": "predict_with_unknown"` answers TF Serving's multi-output shape,
the probabilities with the named outputs `unknown_score` and `unknown`
(`predict_body`); the default signatures keep answering probabilities only.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelstore.contract import INPUT_NAMES, OUTPUT_NAME, SERVING_SIGNATURE, SIGNATURES
from modelstore.unknown import UNKNOWN_FLAG_NAME, UNKNOWN_SCORE_NAME, UNKNOWN_SIGNATURE
from service.errors import BadRequest, Conflict, Unprocessable
from service.load_progress import LoadState
from service.model_version import ModelVersion
from service.predictor import ImageInput, Prediction
from service.unknown_outputs import flags

ACCEPTED_SIGNATURES = (*SIGNATURES, UNKNOWN_SIGNATURE)


@dataclass
class PredictRequest:
    columnar: bool
    signature: str = SERVING_SIGNATURE
    encoded: list[ImageInput] | None = None  # b64 images
    arrays: np.ndarray | None = None  # raw uint8 tensors


def _b64(value: Any, where: str) -> ImageInput:
    if not isinstance(value.get("b64"), str):
        raise BadRequest(f"{where}: 'b64' must be a base64 string")
    try:
        return ImageInput(base64.b64decode(value["b64"], validate=True), None)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"{where}: invalid base64 ({exc})") from exc


def _unwrap(instance: Any, where: str) -> Any:
    """`{"images": X}` / `{"image_bytes": X}` -> X; anything else unchanged."""
    if isinstance(instance, dict) and "b64" not in instance:
        named = [key for key in INPUT_NAMES if key in instance]
        if len(instance) != 1 or not named:
            raise BadRequest(
                f'{where}: expected {{"b64": ...}} or a single input named '
                f"{' or '.join(INPUT_NAMES)}, got keys {sorted(instance)}"
            )
        return instance[named[0]]
    return instance


def parse_predict(body: Any) -> PredictRequest:
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object like {"instances": [{"b64": "..."}]}')
    signature = body.get("signature_name", SERVING_SIGNATURE)
    if signature not in ACCEPTED_SIGNATURES:
        raise BadRequest(
            f"unknown signature_name {signature!r}; use {', '.join(ACCEPTED_SIGNATURES)}"
        )
    if ("instances" in body) == ("inputs" in body):
        raise BadRequest("the body needs exactly one of 'instances' (row) or 'inputs' (columnar)")
    columnar = "inputs" in body
    items = _unwrap(body["inputs"], "inputs") if columnar else body["instances"]
    if not isinstance(items, list) or not items:
        raise BadRequest("'instances' / 'inputs' must be a non-empty list")
    items = [_unwrap(item, f"instance {i}") for i, item in enumerate(items)]
    if items and all(isinstance(item, dict) for item in items):
        return PredictRequest(
            columnar, signature, encoded=[_b64(it, f"instance {i}") for i, it in enumerate(items)]
        )
    if any(isinstance(item, dict) for item in items):
        raise BadRequest('mixing {"b64": ...} instances with pixel arrays is not supported')
    try:
        arrays = np.asarray(items)
    except ValueError as exc:  # ragged nesting
        raise Unprocessable(f"the pixel arrays have inconsistent shapes: {exc}") from exc
    if arrays.ndim != 4 or arrays.shape[-1] != 3 or not np.issubdtype(arrays.dtype, np.integer):
        raise Unprocessable(
            "pixel instances must be integer arrays of shape [height, width, 3]; "
            f"got an array of shape {list(arrays.shape)} and type {arrays.dtype}"
        )
    if arrays.size and (arrays.min() < 0 or arrays.max() > 255):
        raise Unprocessable("pixel values must be between 0 and 255 (uint8)")
    return PredictRequest(columnar, signature, arrays=arrays.astype(np.uint8))


def predict_body(request: PredictRequest, result: Prediction) -> dict[str, Any]:
    """TF Serving's answer: probabilities only for the default signatures; with
    `predict_with_unknown`, one named output each (row: per instance; columnar: per name)."""
    rows = result.probabilities.tolist()
    if request.signature != UNKNOWN_SIGNATURE:
        return {"outputs": rows} if request.columnar else {"predictions": rows}
    flagged = flags(result.model.model, result.unknown_scores)
    if result.unknown_scores is None or flagged is None:
        raise Conflict(
            f"{result.model.name} version {result.model.version} has no unknown scorer, so no "
            f"signature {UNKNOWN_SIGNATURE!r}; fit a new version to get one"
        )
    scores, marks = result.unknown_scores.tolist(), flagged.tolist()
    if request.columnar:
        return {
            "outputs": {OUTPUT_NAME: rows, UNKNOWN_SCORE_NAME: scores, UNKNOWN_FLAG_NAME: marks}
        }
    return {
        "predictions": [
            {OUTPUT_NAME: row, UNKNOWN_SCORE_NAME: score, UNKNOWN_FLAG_NAME: mark}
            for row, score, mark in zip(rows, scores, marks, strict=True)
        ]
    }


def version_status(
    models: list[ModelVersion], loading: list[LoadState] | None = None
) -> dict[str, Any]:
    """TF Serving's status shape, newest first: loaded versions are AVAILABLE, versions
    being loaded or warmed up LOADING (with the step), versions that failed END with the
    error (as TF Serving reports a version it could not load)."""
    entries: list[tuple[int, dict[str, Any]]] = [
        (
            m.version,
            {
                "version": str(m.version),
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
                "device": m.device,
                "precision": m.precision,
            },
        )
        for m in models
    ]
    served = {m.version for m in models}
    for s in loading or []:
        if s.version in served:
            continue  # failed to load again after serving: the served copy is what counts
        failed = s.state == "failed"
        entries.append(
            (
                s.version,
                {
                    "version": str(s.version),
                    "state": "END" if failed else "LOADING",
                    "status": {
                        "error_code": "UNKNOWN" if failed else "OK",
                        "error_message": (s.error or "") if failed else "",
                    },
                    "step": s.step,
                },
            )
        )
    return {"model_version_status": [entry for _, entry in sorted(entries, key=lambda e: -e[0])]}


def model_metadata(model: ModelVersion) -> dict[str, Any]:
    return {
        "model_spec": {"name": model.name, "signature_name": "", "version": str(model.version)},
        "metadata": {"signature_def": {"signature_def": {SERVING_SIGNATURE: model.signature_def}}},
        "labels": model.labels,
        "image_size": model.image_size,
        "device": model.device,
        "precision": model.precision,
        "base_weights": model.metadata.base_weights.model_dump(),
    }
