"""Explanations: per image a Grad-CAM heatmap for the predicted (or a requested) class.

No FastAPI here. Images are decoded like predictions (the predictor's bounded
decode pool); the model's `explain` signature then runs on this module's own
worker thread, in fp32 (`modelstore.unknown_signatures`), never on the event
loop. Explanations cost a forward and a partial backward pass each, so they are
bounded apart from predictions: at most `max_queue` images waiting, answered
within `request_timeout_s`, else 503 / 504 like a prediction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelstore.unknown import EXPLAIN_SIGNATURE, PREDICTED_CLASS
from service.errors import BadRequest, Conflict, InferenceTimeout, Overloaded, Unprocessable
from service.heatmap_image import overlay_png_b64
from service.model_version import ModelVersion
from service.predictor import ImageInput, Predictor
from service.tfserving_codec import PredictRequest, parse_predict
from service.unknown_outputs import unknown_fields


@dataclass(frozen=True)
class ExplainOptions:
    target: str | None = None  # a label or a class index; None: the predicted class
    heatmap_array: bool = False  # also answer the [h, w] heatmap as numbers


def class_index(model: ModelVersion, target: str | None) -> int:
    """The class to explain: a label, a class id / index, or the predicted one (None)."""
    if target is None or target == "":
        return PREDICTED_CLASS
    if target in model.labels:
        return model.labels.index(target)
    ids = [str(c) for c in model.class_ids]
    if target in ids:
        return ids.index(target)
    if target.isdigit() and int(target) < len(model.labels):
        return int(target)
    shown = ", ".join(model.labels[:10]) + (" ..." if len(model.labels) > 10 else "")
    raise Unprocessable(f"class {target!r} is not a label or class index of {model.name} ({shown})")


class Explainer:
    """Decode + explain + draw, off the event loop and bounded."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.settings = predictor.settings
        # One thread: an explanation already uses every core TensorFlow is given, and a
        # second at once would only make both slower.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="explain")
        self._waiting = 0  # images queued or being explained (event loop only)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    async def explain_images(
        self, name: str, version: int | None, items: Sequence[ImageInput], options: ExplainOptions
    ) -> dict[str, Any]:
        """Encoded images -> the explanation body."""
        self.predictor.check_count(len(items))
        with self.predictor.repository.lease(name, version) as model:
            explainable(model)
            target = class_index(model, options.target)
            pictures = await self.predictor.decode(items, model.image_size)
            return await self._explain(
                model, pictures, [item.filename for item in items], target, options
            )

    async def explain_arrays(
        self, name: str, version: int | None, pictures: np.ndarray, options: ExplainOptions
    ) -> dict[str, Any]:
        """uint8 pixel arrays at the model's input size -> the explanation body."""
        self.predictor.check_count(len(pictures))
        with self.predictor.repository.lease(name, version) as model:
            explainable(model)
            expected = (model.image_size, model.image_size, 3)
            if pictures.shape[1:] != expected:
                raise Unprocessable(
                    f"each instance must be a uint8 array of shape {list(expected)}, "
                    f"got {list(pictures.shape[1:])}"
                )
            target = class_index(model, options.target)
            return await self._explain(model, pictures, [None] * len(pictures), target, options)

    async def _explain(
        self,
        model: ModelVersion,
        pictures: np.ndarray,
        filenames: Sequence[str | None],
        target: int,
        options: ExplainOptions,
    ) -> dict[str, Any]:
        limit = self.settings.max_queue
        if self._waiting and self._waiting + len(pictures) > limit:
            raise Overloaded(
                f"explanations queue is full ({self._waiting} images waiting, limit {limit}); "
                "retry shortly",
                retry_after_s=1,
            )
        loop = asyncio.get_running_loop()
        self._waiting += len(pictures)
        job = loop.run_in_executor(
            self._pool, explain_body, model, pictures, filenames, target, options
        )
        try:
            return await asyncio.wait_for(job, self.settings.request_timeout_s)
        except TimeoutError as exc:
            raise InferenceTimeout(
                f"the explanation took longer than {self.settings.request_timeout_s:g} s; "
                "send fewer images per request"
            ) from exc
        finally:
            self._waiting -= len(pictures)


def explainable(model: ModelVersion) -> None:
    """409 for a version exported without the `explain` signature."""
    if model.model.beyond is None:
        raise Conflict(
            f"{model.name} version {model.version} was exported without the "
            f"{EXPLAIN_SIGNATURE!r} signature, so it cannot explain; fit a new version "
            "(training fit exports it) or ask a version that has it (GET /models)"
        )


def explain_body(
    model: ModelVersion,
    pictures: np.ndarray,
    filenames: Sequence[str | None],
    target: int,
    options: ExplainOptions,
) -> dict[str, Any]:
    """Run the model's explain signature and draw each heatmap (on the explain thread)."""
    requested = np.full((len(pictures),), target, np.int32)
    # An explanation says both why it answered and how familiar the picture looked.
    # A version on a shared base explains from its own complete SavedModel, loaded on its
    # first explanation (`split_loader.HeadScorer`).
    heatmaps, classes, probs, scores = model.model.explain(pictures, requested)
    explanations = []
    for i, heat in enumerate(heatmaps):
        c = int(classes[i])
        entry: dict[str, Any] = {
            "filename": filenames[i],
            "class_id": model.class_ids[c],
            "label": model.labels[c],
            "score": float(probs[i, c]),
            **unknown_fields(model.model, float(scores[i])),
            "heatmap_shape": list(heat.shape),
            "heatmap_png": overlay_png_b64(pictures[i], heat),
        }
        if options.heatmap_array:
            entry["heatmap"] = np.round(heat, 4).tolist()
        explanations.append(entry)
    return {"model": model.name, "version": model.version, "explanations": explanations}


def parse_v1_explain(document: Any) -> tuple[PredictRequest, ExplainOptions]:
    """KServe V1 `:explain` body: TF Serving's predict body (`instances` / `inputs`), plus
    optional `"class"` (a label or class index) and `"heatmap_array"` (true/false)."""
    request = parse_predict(document)
    target = document.get("class")
    if target is not None and (isinstance(target, bool) or not isinstance(target, str | int)):
        raise BadRequest(f"'class' must be a label or a class index, got {target!r}")
    want_array = document.get("heatmap_array", False)
    if not isinstance(want_array, bool):
        raise BadRequest(f"'heatmap_array' must be true or false, got {want_array!r}")
    return request, ExplainOptions(None if target is None else str(target), want_array)
