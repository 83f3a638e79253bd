"""Load and call a version's `predict_with_unknown` and `explain` signatures (checked).

`modelstore.loader` attaches a `BeyondLabel` to a `PublishedModel` when its
metadata records a scorer; a version whose metadata promises one that its
SavedModel lacks is refused (InvalidModelError), never served half-way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
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
