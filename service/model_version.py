"""One served model version: a checked `PublishedModel`, warmed up, with its own batcher.

Loading and checking are `modelstore.loader`'s (the same loader `training`
uses); this module adds what serving needs: a warm-up at every batch shape the
batcher will use, a `DynamicBatcher`, and a lifetime that releases the version
only after its last in-flight request.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from modelstore.loader import PublishedModel, load_published
from modelstore.metadata import InvalidModelError, ModelMetadata
from modelstore.runtime import Runtime
from service.batcher import DynamicBatcher
from service.load_progress import LoadProgress, warm_up_step
from service.telemetry import Metrics
from service.unknown_outputs import packed_predict, packed_width

if TYPE_CHECKING:  # a shared-base version (service.shared_base) reads the same
    from modelstore.split_loader import PublishedHead
    from service.base_batcher import HeadQueue

log = logging.getLogger(__name__)


@dataclass
class BatchingConfig:
    buckets: list[int]
    max_delay_s: float
    max_queue: int


@dataclass
class ModelVersion:
    """A version ready to serve; `batcher` runs its model calls on one worker thread.

    Served `whole` (its own SavedModel and batcher) or on a `shared-base` (its head on
    the base `base`, whose batcher serves every version on that base).
    """

    model: PublishedModel | PublishedHead
    batcher: DynamicBatcher | HeadQueue
    served: Literal["whole", "shared-base"] = "whole"
    base: str | None = None  # the shared base's identity key
    whole_reason: str | None = None  # why a version is served whole, when sharing is on
    _refs: int = 0
    _retired: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # Read-only facts, kept readable after the version is released.
    @property
    def name(self) -> str:
        return self.model.name

    @property
    def version(self) -> int:
        return self.model.version

    @property
    def path(self) -> Path:
        return self.model.path

    @property
    def metadata(self) -> ModelMetadata:
        return self.model.metadata

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    @property
    def class_ids(self) -> list[int | str]:
        return self.model.class_ids

    @property
    def image_size(self) -> int:
        return self.model.image_size

    @property
    def device(self) -> str:
        return self.model.device

    @property
    def precision(self) -> str:
        return self.model.precision

    @property
    def signature_def(self) -> dict[str, Any]:
        return self.model.signature_def

    # ---- lifetime: a retired version is released when its last request finishes ----
    def acquire(self) -> None:
        with self._lock:
            self._refs += 1

    def release(self) -> None:
        with self._lock:
            self._refs -= 1
            done = self._retired and self._refs == 0
        if done:
            self._unload()

    def retire(self) -> None:
        """Take the version out of service; unload now or after its in-flight requests."""
        with self._lock:
            self._retired = True
            done = self._refs == 0
        if done:
            self._unload()

    def _unload(self) -> None:
        self.batcher.close(timeout_s=0)  # no request holds it: the worker exits on its own
        self.model.release()
        log.info("model %s version %d released", self.name, self.version)


def warm_up(
    model: PublishedModel, buckets: list[int], progress: LoadProgress | None = None
) -> None:
    """One call at every batch shape the batcher uses, so no request pays for tracing."""
    size, classes = model.image_size, packed_width(model)
    predict = packed_predict(model)  # the function the batcher will run
    for index, bucket in enumerate(buckets, start=1):
        if progress is not None:
            progress.step("warming", warm_up_step(bucket, index, len(buckets)))
        try:
            probs = predict(np.zeros((bucket, size, size, 3), np.uint8))
        except Exception as exc:  # a graph that fails on valid input is not servable
            raise InvalidModelError(f"warm-up at batch {bucket} failed: {exc}") from exc
        if probs.shape != (bucket, classes) or not np.all(np.isfinite(probs)):
            raise InvalidModelError(
                f"warm-up at batch {bucket} returned shape {probs.shape} (expected "
                f"{(bucket, classes)}) or non-finite values"
            )


def load_model_version(
    name: str,
    version: int,
    path: Path,
    runtime: Runtime,
    batching: BatchingConfig,
    metrics: Metrics | None = None,
    progress: LoadProgress | None = None,
) -> ModelVersion:
    """Load, check and warm up one version; raises InvalidModelError with the reason.

    `progress` (if given) is told each step as it starts: reading, then every warm-up shape.
    """
    model = load_published(path, runtime)
    if (model.name, model.version) != (name, version):
        # A copied folder keeps its old metadata; the folder's place is what serves.
        log.warning(
            "%s says it is %s version %d; serving it as %s version %d",
            path,
            model.name,
            model.version,
            name,
            version,
        )
        model.metadata = model.metadata.model_copy(update={"name": name, "version": version})
    began = time.perf_counter()
    warm_up(model, batching.buckets, progress)
    batcher = DynamicBatcher(
        packed_predict(model),
        name=name,
        version=version,
        buckets=batching.buckets,
        max_delay_s=batching.max_delay_s,
        max_queue=batching.max_queue,
        metrics=metrics,
        precision=model.precision,
    )
    log.info(
        "model %s version %d loaded on %s in %s and warmed up in %.2f s (batch shapes %s)",
        name,
        version,
        model.device,
        model.precision,
        time.perf_counter() - began,
        batching.buckets,
    )
    if progress is not None:
        progress.finish()
    return ModelVersion(model, batcher)
