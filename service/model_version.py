"""One loaded model version: read, check, warm up, serve through its own batcher.

`load_model_version` refuses a version that does not keep the export contract
(DESIGN.md: `serving_default` taking uint8 `images` [batch, size, size, 3] and
returning `probabilities` [batch, len(labels)], readable metadata.json), so a
broken export is reported with its reason instead of answering garbage.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from service.batcher import DynamicBatcher
from service.metrics import Metrics
from training.repository import METADATA_FILE

log = logging.getLogger(__name__)

SIGNATURE = "serving_default"
INPUT = "images"
OUTPUT = "probabilities"


class InvalidModelError(Exception):
    """A model version folder that cannot be served; the message says why."""


@dataclass
class BatchingConfig:
    buckets: list[int]
    max_delay_s: float
    max_queue: int


@dataclass
class ModelVersion:
    """A SavedModel version ready to serve; `batcher` runs its calls."""

    name: str
    version: int
    path: Path
    metadata: dict[str, Any]
    labels: list[str]
    class_ids: list[int | str]
    image_size: int
    device: str
    signature_def: dict[str, Any]
    batcher: DynamicBatcher | None = None
    loaded_at: float = field(default_factory=time.time)
    _saved: Any = None
    _fn: Any = None
    _refs: int = 0
    _retired: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- inference (worker thread only) ---------------------------------------------
    def predict_batch(self, images: np.ndarray) -> np.ndarray:
        with tf.device(self.device):
            out = self._fn(**{INPUT: tf.constant(images, dtype=tf.uint8)})[OUTPUT]
        return np.asarray(out.numpy(), dtype=np.float32)

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

    @property
    def in_flight(self) -> int:
        return self._refs

    def _unload(self) -> None:
        if self.batcher is not None:
            self.batcher.close(timeout_s=0)  # queue is empty: the worker exits on its own
        self._fn = None
        self._saved = None
        log.info("model %s version %d released", self.name, self.version)


def read_metadata(path: Path) -> dict[str, Any]:
    meta_path = path / METADATA_FILE
    if not meta_path.is_file():
        raise InvalidModelError(f"{METADATA_FILE} is missing")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidModelError(f"{METADATA_FILE} is unreadable: {exc}") from exc
    if not isinstance(meta, dict):
        raise InvalidModelError(f"{METADATA_FILE} is not a JSON object")
    labels = meta.get("labels")
    if (
        not isinstance(labels, list)
        or len(labels) < 2
        or not all(isinstance(x, str) for x in labels)
    ):
        raise InvalidModelError(f"{METADATA_FILE} needs 'labels', a list of at least two names")
    size = meta.get("image_size")
    if not isinstance(size, int) or size < 1:
        raise InvalidModelError(f"{METADATA_FILE} needs 'image_size', a positive integer")
    return meta


def class_ids_for(meta: dict[str, Any]) -> list[int | str]:
    """What `decode_predictions` reports as `class_id`.

    `training export-imagenet` records `class_index`, `[[wnid, name], ...]` in
    output order, so ImageNet models answer WordNet ids; other models answer the
    class index.
    """
    labels = meta["labels"]
    index = meta.get("class_index")
    if isinstance(index, list) and len(index) == len(labels):
        return [str(pair[0]) for pair in index]
    return list(range(len(labels)))


def _tensor_info(spec: tf.TensorSpec, name: str) -> dict[str, Any]:
    """A TensorSpec in TensorFlow Serving's signature_def JSON shape."""
    dims = [{"size": str(-1 if d is None else d), "name": ""} for d in spec.shape.as_list()]
    return {
        "dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),  # DT_UINT8, DT_FLOAT
        "tensor_shape": {"dim": dims, "unknown_rank": False},
        "name": name,
    }


def _check_signature(fn: Any, size: int, classes: int) -> dict[str, Any]:
    inputs = fn.structured_input_signature[1]
    if INPUT not in inputs:
        raise InvalidModelError(f"{SIGNATURE} has no input named {INPUT!r} (has {sorted(inputs)})")
    spec = inputs[INPUT]
    if spec.dtype != tf.uint8 or spec.shape.as_list()[1:] != [size, size, 3]:
        raise InvalidModelError(
            f"{SIGNATURE} input {INPUT!r} is {spec.dtype.name} {spec.shape}; "
            f"metadata promises uint8 [batch, {size}, {size}, 3]"
        )
    outputs = fn.structured_outputs
    if OUTPUT not in outputs:
        raise InvalidModelError(f"{SIGNATURE} has no output named {OUTPUT!r}")
    width = outputs[OUTPUT].shape.as_list()[-1]
    if width is not None and width != classes:
        raise InvalidModelError(
            f"the model outputs {width} classes but metadata has {classes} labels"
        )
    return {
        "inputs": {k: _tensor_info(v, f"{SIGNATURE}_{k}:0") for k, v in inputs.items()},
        "outputs": {
            k: _tensor_info(v, f"StatefulPartitionedCall:{i}")
            for i, (k, v) in enumerate(sorted(outputs.items()))
        },
        "method_name": "tensorflow/serving/predict",
    }


def load_model_version(
    name: str,
    version: int,
    path: Path,
    device: str,
    batching: BatchingConfig,
    metrics: Metrics | None = None,
) -> ModelVersion:
    """Load, check and warm up one version; raises InvalidModelError with the reason."""
    meta = read_metadata(path)
    labels, size = list(meta["labels"]), int(meta["image_size"])
    try:
        with tf.device(device):
            saved = tf.saved_model.load(str(path))
    except Exception as exc:  # TensorFlow raises many types for a damaged SavedModel
        raise InvalidModelError(
            f"the SavedModel does not load: {type(exc).__name__}: {exc}"
        ) from exc
    signatures = getattr(saved, "signatures", {})
    if SIGNATURE not in signatures:
        raise InvalidModelError(f"signature {SIGNATURE!r} is missing (has {sorted(signatures)})")
    fn = signatures[SIGNATURE]
    signature_def = _check_signature(fn, size, len(labels))
    model = ModelVersion(
        name=name,
        version=version,
        path=path,
        metadata=meta,
        labels=labels,
        class_ids=class_ids_for(meta),
        image_size=size,
        device=device,
        signature_def=signature_def,
        _saved=saved,
        _fn=fn,
    )
    # Warm-up: one call at every bucket the batcher pads to, so no request pays for tracing.
    began = time.perf_counter()
    for bucket in batching.buckets:
        try:
            probs = model.predict_batch(np.zeros((bucket, size, size, 3), np.uint8))
        except Exception as exc:  # a graph that fails on valid input is not servable
            raise InvalidModelError(f"warm-up at batch {bucket} failed: {exc}") from exc
        if probs.shape != (bucket, len(labels)) or not np.all(np.isfinite(probs)):
            raise InvalidModelError(
                f"warm-up at batch {bucket} returned shape {probs.shape} (expected "
                f"{(bucket, len(labels))}) or non-finite values"
            )
    model.batcher = DynamicBatcher(
        model.predict_batch,
        label=name,
        buckets=batching.buckets,
        max_delay_s=batching.max_delay_s,
        max_queue=batching.max_queue,
        metrics=metrics,
        version=version,
    )
    log.info(
        "model %s version %d loaded on %s and warmed up in %.2f s (buckets %s)",
        name,
        version,
        device,
        time.perf_counter() - began,
        batching.buckets,
    )
    return model
