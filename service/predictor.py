"""From request bytes to ranked classes: decode in a thread pool, batch, rank.

No FastAPI here. Images are decoded by `imaging.load_image`, the same function
training uses, in a small thread pool so the event loop never runs Pillow; the
model call goes through the version's `DynamicBatcher` so it never runs
TensorFlow either.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from imaging.decode import ImageError, load_image
from service.errors import (
    BadRequest,
    InferenceTimeout,
    Overloaded,
    PayloadTooLarge,
    Unprocessable,
    from_image_error,
)
from service.json_body import parse_json
from service.model_version import ModelVersion
from service.repository import ModelRepository
from service.settings import Settings
from service.shared_base import predict_together
from service.telemetry import Metrics
from service.unknown_outputs import unpack

T = TypeVar("T")


@dataclass(frozen=True)
class ImageInput:
    data: bytes
    filename: str | None = None


@dataclass(frozen=True)
class Prediction:
    model: ModelVersion  # labels and class ids stay readable after the version is released
    probabilities: np.ndarray  # [n, classes]
    unknown_scores: np.ndarray | None = None  # [n]; None for a version without a scorer


class Predictor:
    """Decode + batch + predict for any loaded model; shared by every route."""

    def __init__(self, repository: ModelRepository, settings: Settings, metrics: Metrics) -> None:
        self.repository = repository
        self.settings = settings
        self.metrics = metrics
        self._pool = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="decode")
        self._decoding = 0  # images waiting for or in the decode pool (event loop only)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def check_count(self, n: int, what: str = "images") -> None:
        if n == 0 and what == "images":
            raise BadRequest(
                "the request holds no image; send multipart field 'file' or a raw image body"
            )
        if n > self.settings.max_images_per_request:
            raise PayloadTooLarge(
                f"{n} {what} in one request; the limit is {self.settings.max_images_per_request}"
            )

    def _decode_one(self, item: ImageInput, size: int) -> np.ndarray:
        began = time.perf_counter()
        try:
            return load_image(item.data, size, max_pixels=self.settings.max_image_pixels)
        except ImageError as exc:
            raise from_image_error(exc, item.filename) from exc
        finally:
            self.metrics.decode_seconds.observe(time.perf_counter() - began)

    async def _in_pool(self, calls: Sequence[Callable[[], T]], what: str) -> list[T]:
        """Run `calls` in the decode pool; bounded like the batch queue, within the timeout.

        Large pictures can cost a second each to decode, a large JSON body as long to
        parse: without a bound, one request of many such inputs would delay every other
        request's decoding without limit. Each call counts as one queued item.
        """
        limit = self.settings.max_decode_queue
        if self._decoding and self._decoding + len(calls) > limit:
            raise Overloaded(
                f"the decode queue is full ({self._decoding} inputs waiting, limit {limit}); "
                "retry shortly",
                retry_after_s=1,
            )
        loop = asyncio.get_running_loop()
        self._decoding += len(calls)
        jobs = [loop.run_in_executor(self._pool, call) for call in calls]
        try:
            return list(
                await asyncio.wait_for(asyncio.gather(*jobs), self.settings.request_timeout_s)
            )
        except TimeoutError as exc:
            raise InferenceTimeout(
                f"{what} took longer than {self.settings.request_timeout_s:g} s; "
                "send smaller inputs or fewer per request"
            ) from exc
        finally:
            self._decoding -= len(calls)

    async def decode(self, items: Sequence[ImageInput], size: int) -> np.ndarray:
        """Decode images at `size` in the pool (`imaging.load_image`, like training)."""
        calls = [functools.partial(self._decode_one, item, size) for item in items]
        return np.stack(await self._in_pool(calls, "decoding the images"))

    async def off_loop(self, call: Callable[[], T], what: str) -> T:
        """Run one call (parsing a large body, say) in the bounded decode pool."""
        (result,) = await self._in_pool([call], what)
        return result

    async def parse_body(self, body: bytes, convert: Callable[[Any], T]) -> T:
        """Parse a JSON body and `convert` the document, both off the event loop."""
        return await self.off_loop(lambda: convert(parse_json(body)), "parsing the JSON body")

    async def predict_images(
        self, name: str, version: int | None, items: Sequence[ImageInput]
    ) -> Prediction:
        """Decode `items` at the model's input size and predict them in one batched call."""
        self.check_count(len(items))
        with self.repository.lease(name, version) as model:
            images = await self.decode(items, model.image_size)
            return await self._run(model, images)

    def model_names(self, text: str) -> list[str]:
        """`"a, b,a"` -> `["a", "b"]` (order kept, repeats dropped); 422 empty, 413 too many."""
        names = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
        if not names:
            raise Unprocessable("'models' names no model; send models=a,b,c")
        limit = self.settings.max_models_per_request
        if len(names) > limit:
            raise PayloadTooLarge(f"{len(names)} models in one request; the limit is {limit}")
        return names

    async def predict_many(
        self, names: Sequence[str], items: Sequence[ImageInput]
    ) -> list[Prediction]:
        """Every named model (its latest version) on every image, in the order named.

        Images are decoded once per input size; models on one shared base run as one
        job of its batcher, so each image goes through that base once for all of them.
        """
        self.check_count(len(items))
        with contextlib.ExitStack() as leases:
            models = [leases.enter_context(self.repository.lease(name)) for name in names]
            images = {}
            for size in sorted({model.image_size for model in models}):
                images[size] = await self.decode(items, size)
            probs = await predict_together(models, images, self.settings.request_timeout_s)
        return [self._record(model, p) for model, p in zip(models, probs, strict=True)]

    async def predict_arrays(
        self, name: str, version: int | None, images: np.ndarray
    ) -> Prediction:
        """Predict already-decoded uint8 arrays (TF Serving's raw-tensor instances)."""
        self.check_count(len(images))
        with self.repository.lease(name, version) as model:
            expected = (model.image_size, model.image_size, 3)
            if images.shape[1:] != expected:
                raise Unprocessable(
                    f"each instance must be a uint8 array of shape {list(expected)}, "
                    f"got {list(images.shape[1:])}"
                )
            return await self._run(model, images)

    async def _run(self, model: ModelVersion, images: np.ndarray) -> Prediction:
        rows = await model.batcher.predict(images, self.settings.request_timeout_s)
        return self._record(model, rows)

    def _record(self, model: ModelVersion, rows: np.ndarray) -> Prediction:
        probs, unknown_scores = unpack(model.model, rows)
        best = probs.argmax(axis=1)
        for row, index in zip(probs, best, strict=True):
            self.metrics.predictions.labels(model=model.name, label=model.labels[index]).inc()
            self.metrics.confidence.labels(model=model.name).observe(float(row[index]))
        return Prediction(model, probs, unknown_scores)
