"""Load and call a version's `predict_with_unknown` and `explain` signatures (checked).

A version on a shared base (`modelstore.split_loader`) scores with its head's
`head_with_unknown` signature instead (`HeadScorer`), and explains from its
complete SavedModel, loaded on its first explanation.

`modelstore.loader` attaches a `BeyondLabel` to a `PublishedModel` when its
metadata records a scorer; a version whose metadata promises one that its
SavedModel lacks is refused (InvalidModelError), never served half-way.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
from tensorflow.python.eager import context

from modelstore.contract import INPUT_NAME, OUTPUT_NAME
from modelstore.metadata import InvalidModelError, ModelMetadata
from modelstore.unknown import (
    CLASS_INPUT_NAME,
    EXPLAIN_SIGNATURE,
    HEATMAP_NAME,
    UNKNOWN_SCORE_NAME,
    UnknownRecord,
)


def _checked(signatures: Any, name: str, inputs: set[str], outputs: set[str]) -> Any:
    if name not in signatures:
        raise InvalidModelError(
            f"metadata.json records an unknown scorer but signature {name!r} is missing "
            f"(has {sorted(signatures)})"
        )
    fn = signatures[name]
    have_in, have_out = set(fn.structured_input_signature[1]), set(fn.structured_outputs)
    if not inputs <= have_in or not outputs <= have_out:
        raise InvalidModelError(
            f"signature {name!r} takes {sorted(have_in)} and returns {sorted(have_out)}; "
            f"expected inputs {sorted(inputs)} and outputs {sorted(outputs)}"
        )
    return fn


@dataclass
class BeyondLabel:
    """The unknown scorer's record and both extra signature functions of a loaded version."""

    record: UnknownRecord
    _scored: Any
    _explain: Any

    @property
    def threshold(self) -> float:
        return self.record.threshold

    def predict(self, pictures: tf.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """uint8 `[n, s, s, 3]` -> probabilities `[n, classes]`, unknown scores `[n]`."""
        out = self._scored(**{INPUT_NAME: pictures})
        return (
            np.asarray(out[OUTPUT_NAME].numpy(), np.float32),
            np.asarray(out[UNKNOWN_SCORE_NAME].numpy(), np.float32),
        )

    def explain(
        self, pictures: tf.Tensor, class_index: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Grad-CAM heatmaps `[n, h, w]` in [0, 1], the explained classes, probabilities and
        unknown scores (in fp32 whatever the process's precision)."""
        with fp32_function_calls():
            out = self._explain(
                **{INPUT_NAME: pictures, CLASS_INPUT_NAME: tf.constant(class_index, tf.int32)}
            )
        return (
            np.asarray(out[HEATMAP_NAME].numpy(), np.float32),
            np.asarray(out[CLASS_INPUT_NAME].numpy(), np.int64),
            np.asarray(out[OUTPUT_NAME].numpy(), np.float32),
            np.asarray(out[UNKNOWN_SCORE_NAME].numpy(), np.float32),
        )

    def release(self) -> None:
        self._scored = self._explain = None


def load_beyond_label(saved: Any, meta: ModelMetadata) -> BeyondLabel | None:
    """The version's scorer and explainer, or None for a version fitted without them."""
    if meta.unknown is None:
        return None
    signatures = getattr(saved, "signatures", {})
    scored = _checked(
        signatures, meta.unknown.signature, {INPUT_NAME}, {OUTPUT_NAME, UNKNOWN_SCORE_NAME}
    )
    explain = _checked(
        signatures,
        EXPLAIN_SIGNATURE,
        {INPUT_NAME, CLASS_INPUT_NAME},
        {HEATMAP_NAME, CLASS_INPUT_NAME, OUTPUT_NAME, UNKNOWN_SCORE_NAME},
    )
    return BeyondLabel(meta.unknown, scored, explain)


@dataclass
class HeadScorer:
    """The unknown scorer of a split version: its record, the head's scoring signature and,
    loaded on the first explanation only, the complete SavedModel's `explain`.

    Reads like `BeyondLabel` for what the service asks of a scorer (threshold,
    record, explain). Grad-CAM needs gradients through the base's last convolution,
    which the shared base's `features` signature does not give, so an explanation
    loads the version's own complete SavedModel once (its memory is held until the
    version is released); predictions never do.
    """

    record: UnknownRecord
    path: Path  # the version folder, whose complete SavedModel has `explain`
    metadata: ModelMetadata
    device: str
    scoring: Any  # the head's signature: features -> probabilities, unknown_score, unknown
    _whole: tuple[Any, BeyondLabel] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def threshold(self) -> float:
        return self.record.threshold

    def explain(
        self, pictures: tf.Tensor, class_index: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`BeyondLabel.explain` of the complete SavedModel (loaded on first use)."""
        return self._explainer().explain(pictures, class_index)

    def _explainer(self) -> BeyondLabel:
        with self._lock:
            if self._whole is None:
                saved = _load_whole(self.path, self.device)
                beyond = load_beyond_label(saved, self.metadata)
                assert beyond is not None  # the metadata records a scorer
                self._whole = (saved, beyond)
            return self._whole[1]

    def release(self) -> None:
        self.scoring = None
        with self._lock:
            if self._whole is not None:
                self._whole[1].release()
            self._whole = None


def load_head_scorer(
    path: Path, saved: Any, meta: ModelMetadata, serve: Any, device: str
) -> HeadScorer | None:
    """The head's unknown-score signature (checked) for a version with a scorer; None
    for a version without one. `serve`: the head's serving_default, whose inputs it takes."""
    assert meta.head is not None
    name = meta.head.unknown_signature
    if meta.unknown is None or not name:
        return None
    signatures = getattr(saved, "signatures", {})
    if name not in signatures:
        raise InvalidModelError(
            f"the head SavedModel {meta.head.path}/ has no signature {name!r} "
            f"(has {sorted(signatures)})"
        )
    fn = signatures[name]
    inputs, outputs = fn.structured_input_signature[1], fn.structured_outputs
    if set(inputs) != set(serve.structured_input_signature[1]):
        raise InvalidModelError(f"{name} takes {sorted(inputs)}; serving_default takes others")
    if not {OUTPUT_NAME, UNKNOWN_SCORE_NAME} <= set(outputs):
        raise InvalidModelError(
            f"{name} answers {sorted(outputs)}; expected {OUTPUT_NAME!r} and {UNKNOWN_SCORE_NAME!r}"
        )
    return HeadScorer(meta.unknown, path, meta, device, fn)


def _load_whole(path: Path, device: str) -> Any:
    try:
        with tf.device(device):
            return tf.saved_model.load(str(path))
    except Exception as exc:  # TensorFlow raises many types for a damaged SavedModel
        raise InvalidModelError(
            f"the SavedModel in {path.name} does not load: {type(exc).__name__}: {exc}"
        ) from exc


@contextlib.contextmanager
def fp32_function_calls() -> Iterator[None]:
    """Run this thread's TensorFlow function calls without the reduced-precision rewrite.

    `modelstore.runtime` turns on grappler's automatic mixed precision process-wide
    (bf16 on AMX CPUs, fp16 on GPUs); heatmaps are gradients, where bf16's 8-bit
    mantissa shows, so explanations run in fp32. Function call options are per
    thread, so predictions on other threads keep their precision.
    """
    ctx = context.context()
    previous = ctx.function_call_options
    config = config_pb2.ConfigProto()
    config.ParseFromString(previous.config_proto_serialized)
    rewrites = config.graph_options.rewrite_options
    off = rewriter_config_pb2.RewriterConfig.OFF
    rewrites.auto_mixed_precision = off
    rewrites.auto_mixed_precision_onednn_bfloat16 = off
    rewrites.auto_mixed_precision_mkl = off
    rewrites.auto_mixed_precision_cpu = off
    ctx.function_call_options = context.FunctionCallOptions(config_proto=config)
    try:
        yield
    finally:
        ctx.function_call_options = previous
