"""Shared bases: one loaded base per base identity, one small head per model version.

Versions whose metadata records the same base identity (`modelstore.base_identity`)
compute the same features, so the service loads that base once -- from the first
such version's complete SavedModel -- and every version on it loads only its
head (`modelstore.split_loader.load_head`). One `BaseBatcher` per base gathers
the requests of all its versions. A base stays loaded while any version uses it
and is released with the last one (hot reload swaps heads; the base stays).

A version that cannot be split (exported whole, another precision) is served
whole by `service.model_version`; `BaseRegistry.load_version` says why.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelstore.metadata import InvalidModelError, read_metadata
from modelstore.runtime import Runtime
from modelstore.split_loader import (
    LoadedBase,
    PublishedHead,
    load_base,
    load_head,
    runtime_split_refusal,
)
from service.base_batcher import BaseBatcher, HeadQueue
from service.load_progress import LoadProgress, warm_up_step
from service.model_version import BatchingConfig, ModelVersion
from service.telemetry import Metrics

log = logging.getLogger(__name__)


@dataclass
class SharedBase:
    base: LoadedBase
    batcher: BaseBatcher
    heads: set[HeadQueue] = field(default_factory=set)


def _checked(probs: np.ndarray, rows: int, classes: int, what: str) -> None:
    if probs.shape != (rows, classes) or not np.all(np.isfinite(probs)):
        raise InvalidModelError(
            f"warm-up of {what} returned shape {probs.shape} (expected {(rows, classes)}) "
            "or non-finite values"
        )


def warm_up_base(base: LoadedBase, buckets: list[int], progress: LoadProgress | None) -> None:
    """One base call at every batch shape the batcher uses."""
    size, shape = base.identity.image_size, tuple(base.identity.feature_shape)
    for index, bucket in enumerate(buckets, start=1):
        if progress is not None:
            progress.step("warming", "base: " + warm_up_step(bucket, index, len(buckets)))
        try:
            features = base.features(np.zeros((bucket, size, size, 3), np.uint8))
        except Exception as exc:  # a graph that fails on valid input is not servable
            raise InvalidModelError(f"warm-up of the base at batch {bucket} failed: {exc}") from exc
        if features.shape != (bucket, *shape) or not np.all(np.isfinite(features)):
            raise InvalidModelError(f"warm-up of the base at batch {bucket} gave {features.shape}")


def warm_up_head(head: PublishedHead, buckets: list[int], progress: LoadProgress | None) -> None:
    """One head call at every batch shape (the head sees the rows of one model per batch)."""
    shape = tuple(head.identity.feature_shape)
    for index, bucket in enumerate(buckets, start=1):
        if progress is not None:
            progress.step("warming", warm_up_step(bucket, index, len(buckets)))
        zeros = np.zeros((bucket, *shape), np.float32)
        try:
            # What the batcher will run (with the unknown score column, if any).
            probs = head.predict_packed(zeros, zeros if head.mirror else None)
        except Exception as exc:
            raise InvalidModelError(f"warm-up at batch {bucket} failed: {exc}") from exc
        _checked(probs, bucket, len(head.labels) + (head.beyond is not None), "the head")


class BaseRegistry:
    """The loaded shared bases by identity key; attaches and detaches versions' heads."""

    def __init__(
        self, runtime: Runtime, batching: BatchingConfig, metrics: Metrics | None = None
    ) -> None:
        self.runtime = runtime
        self._batching = batching
        self._metrics = metrics
        self._bases: dict[str, SharedBase] = {}
        self._lock = threading.Lock()  # held briefly; never while a model loads

    def describe(self) -> list[dict[str, Any]]:
        """Every loaded base: its key, identity, where it was loaded from, its versions."""
        with self._lock:
            shared = list(self._bases.items())
        return [
            {
                "base": key,
                "identity": s.base.identity.model_dump(),
                "loaded_from": str(s.base.path),
                "versions": sorted(f"{q.head.name}:{q.head.version}" for q in s.heads),
            }
            for key, s in shared
        ]

    def load_version(
        self, name: str, version: int, path: Path, progress: LoadProgress | None = None
    ) -> tuple[ModelVersion | None, str | None]:
        """(the version on its shared base, None), or (None, why it must be served whole).

        Raises InvalidModelError for a version that is broken either way.
        """
        refusal = runtime_split_refusal(path, read_metadata(path), self.runtime)
        if refusal is not None:
            return None, refusal
        if progress is not None:
            progress.step("loading", "reading the head")
        try:
            head = load_head(path, self.runtime)
        except InvalidModelError as exc:
            # The complete SavedModel may still serve; loading it whole says if it cannot.
            return None, f"its head cannot be loaded alone: {exc}"
        if (head.name, head.version) != (name, version):
            # A copied folder keeps its old metadata; the folder's place is what serves.
            head.metadata = head.metadata.model_copy(update={"name": name, "version": version})
        began = time.perf_counter()
        try:
            queue = self._attach(head, path, progress)
        except InvalidModelError as exc:
            head.release()
            return None, f"its base cannot be loaded from it: {exc}"
        try:
            warm_up_head(head, self._batching.buckets, progress)
        except Exception:
            queue.close(timeout_s=0)
            head.release()
            raise
        log.info(
            "model %s version %d loaded on shared base %s (%s, %s), warmed up in %.2f s",
            name,
            version,
            queue.batcher.key,
            head.device,
            head.precision,
            time.perf_counter() - began,
        )
        if progress is not None:
            progress.finish()
        return ModelVersion(head, queue, served="shared-base", base=queue.batcher.key), None

    def _attach(self, head: PublishedHead, path: Path, progress: LoadProgress | None) -> HeadQueue:
        key = head.identity.key
        with self._lock:
            shared = self._bases.get(key)
            if shared is not None:
                return self._new_queue(shared, head)
        # Loaded outside the lock: a request releasing another version must not wait for
        # a base to load. Only the reload thread loads, one version at a time.
        if progress is not None:
            progress.step("loading", f"loading the base {key}")
        base = load_base(path, self.runtime)
        try:
            warm_up_base(base, self._batching.buckets, progress)
        except Exception:
            base.release()
            raise
        batcher = BaseBatcher(
            base,
            key,
            self._batching.buckets,
            self._batching.max_delay_s,
            self._batching.max_queue,
            self._metrics,
        )
        with self._lock:
            shared = self._bases.setdefault(key, SharedBase(base, batcher))
            queue = self._new_queue(shared, head)
        if shared.base is not base:  # another loader was first: keep one copy
            batcher.close(timeout_s=0)
            base.release()
        else:
            log.info("shared base %s loaded from %s", key, path)
        return queue

    def _new_queue(self, shared: SharedBase, head: PublishedHead) -> HeadQueue:
        """Attach `head` to `shared` (call with the lock held)."""
        queue = HeadQueue(shared.batcher, head, self._batching.max_queue, self._detach)
        shared.heads.add(queue)
        shared.batcher.set_head_depth(queue)
        if self._metrics is not None:
            self._metrics.base_heads.labels(base=shared.batcher.key).set(len(shared.heads))
        return queue

    def _detach(self, queue: HeadQueue) -> None:
        """A version left its base; the last one out releases the base."""
        key = queue.batcher.key
        with self._lock:
            shared = self._bases.get(key)
            if shared is None:
                return
            shared.heads.discard(queue)
            left = len(shared.heads)
            if not left:
                del self._bases[key]
        if self._metrics is not None:
            if left:
                self._metrics.base_heads.labels(base=key).set(left)
            else:
                self._metrics.base_heads.remove(key)
        if not left:
            shared.batcher.close(timeout_s=0)  # nothing is queued: no version uses it
            shared.base.release()
            log.info("shared base %s released (its last version left)", key)


async def predict_together(
    models: Sequence[ModelVersion], images: dict[int, np.ndarray], timeout_s: float
) -> list[np.ndarray]:
    """Each model's rows for `images[model.image_size]`, in order: probabilities, and the
    unknown score as a last column for a version with a scorer (`unknown_outputs.unpack`).

    Versions on the same shared base go to its batcher as one job naming all their
    heads (one base pass per image); every other version goes to its own batcher.
    All run concurrently.
    """
    on_base: dict[BaseBatcher, list[int]] = {}
    alone: list[int] = []
    for i, model in enumerate(models):
        if isinstance(model.batcher, HeadQueue):
            on_base.setdefault(model.batcher.batcher, []).append(i)
        else:
            alone.append(i)
    groups: list[list[int]] = [*on_base.values(), *([i] for i in alone)]

    async def run(group: list[int]) -> list[np.ndarray]:
        first = models[group[0]]
        pictures = images[first.image_size]
        if isinstance(first.batcher, HeadQueue):
            heads = [models[i].batcher for i in group]
            return await first.batcher.batcher.predict_heads(pictures, heads, timeout_s)  # type: ignore[arg-type]
        return [await first.batcher.predict(pictures, timeout_s)]

    answers = await asyncio.gather(*(run(group) for group in groups))
    out: list[np.ndarray | None] = [None] * len(models)
    for group, probs in zip(groups, answers, strict=True):
        for i, p in zip(group, probs, strict=True):
            out[i] = p
    return [p for p in out if p is not None]
