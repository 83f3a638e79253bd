"""The one loader of a published version: the service, `training predict`, `evaluate` and
the quality gate all read models through `load_published`.

It refuses a version that does not keep the export contract
(`modelstore.contract`: `serving_default` taking uint8 `images`
[batch, size, size, 3] and returning `probabilities` [batch, len(labels)], valid
metadata.json), so a broken export is reported with its reason instead of
answering garbage.

Where the runtime says int8 (`Precision.int8`) and the version carries a checked
int8 artifact (`modelstore.int8_artifact`), that artifact runs instead of the
SavedModel, behind the same `predict`. Under `auto` a version without a usable
one runs the SavedModel (bf16/fp32, logged with the reason); under an explicit
`int8` it is refused with the reason (PrecisionUnavailableError).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from modelstore.contract import INPUT_NAME, OUTPUT_NAME, SERVING_SIGNATURE
from modelstore.int8_artifact import DEFAULT_STREAMS, Int8Model, artifact_problem, load_int8
from modelstore.layout import resolve_model_path
from modelstore.metadata import InvalidModelError, ModelMetadata, read_metadata
from modelstore.runtime import PrecisionUnavailableError, Runtime
from modelstore.unknown_signatures import BeyondLabel, load_beyond_label

log = logging.getLogger(__name__)


@dataclass
class PublishedModel:
    """A loaded version: its metadata, labels, class ids and serving signature."""

    path: Path
    metadata: ModelMetadata
    device: str
    precision: str  # what it computes in (fp32 | bf16 | fp16 | int8); the SavedModel is fp32
    signature_def: dict[str, Any]  # TF Serving's signature_def JSON of serving_default
    _saved: Any
    _fn: Any
    # The unknown scorer and explainer (modelstore.unknown); None: fitted without them.
    beyond: BeyondLabel | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def version(self) -> int:
        return self.metadata.version

    @property
    def labels(self) -> list[str]:
        return self.metadata.labels

    @property
    def class_ids(self) -> list[int | str]:
        return self.metadata.class_ids

    @property
    def image_size(self) -> int:
        return self.metadata.image_size

    def predict(self, pictures: np.ndarray) -> np.ndarray:
        """uint8 `[n, s, s, 3]` -> float32 probabilities `[n, num_classes]`.

        Raises MemoryError when TensorFlow runs out of memory for the call.
        """
        if isinstance(self._fn, Int8Model):  # its head and softmax ran in fp32
            return self._fn(np.ascontiguousarray(pictures, dtype=np.uint8))

        def run(images: tf.Tensor) -> np.ndarray:
            return np.asarray(self._fn(**{INPUT_NAME: images})[OUTPUT_NAME].numpy(), np.float32)

        return self._distribution(self._call(run, pictures))

    def predict_with_unknown(self, pictures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities `[n, classes]` and unknown scores `[n]` from one pass of the base;
        ValueError for a version fitted without a scorer."""
        beyond = self._beyond()
        probabilities, scores = self._call(beyond.predict, pictures)
        return self._distribution(probabilities), scores

    def _distribution(self, probabilities: np.ndarray) -> np.ndarray:
        """fp32 outputs as the graph gives them; reduced-precision ones renormalised."""
        return probabilities if self.precision == "fp32" else renormalised(probabilities)

    def explain(
        self, pictures: np.ndarray, class_index: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Grad-CAM heatmaps `[n, h, w]`, explained classes `[n]` (`class_index` -1: the
        predicted one), probabilities and unknown scores; ValueError for a version without
        `explain`."""
        beyond = self._beyond()
        return self._call(lambda images: beyond.explain(images, class_index), pictures)

    def _beyond(self) -> BeyondLabel:
        if self.beyond is None:
            raise ValueError(f"{self.name} version {self.version} has no unknown scorer")
        return self.beyond

    def _call(self, run: Any, pictures: np.ndarray) -> Any:
        try:
            with tf.device(self.device):
                return run(tf.constant(pictures, dtype=tf.uint8))
        except tf.errors.ResourceExhaustedError as exc:
            # TensorFlow's allocators (GPU and CPU) say "out of memory" this way. Python's
            # name for it lets callers that never import TensorFlow tell it from a failing
            # model: the service answers 503 + Retry-After, as for any MemoryError.
            raise MemoryError(
                f"TensorFlow ran out of memory running a batch of {len(pictures)} on "
                f"{self.device}: {exc.message}"
            ) from exc

    @property
    def released(self) -> bool:
        return self._fn is None

    def release(self) -> None:
        """Drop the graph and variables (memory goes once no call holds them)."""
        self._fn = None
        self._saved = None
        if self.beyond is not None:
            self.beyond.release()


def renormalised(probabilities: np.ndarray) -> np.ndarray:
    """Rows rescaled in float64 to sum to 1, returned as float32.

    Under bf16 (or fp16) the graph rewriter runs the head's matmul and, with it, the
    softmax's input at 8 bits of mantissa: rows summed to 0.998-1.002. Outputs called
    probabilities must be a distribution, so the division happens here in float64
    (rows then sum to 1 within 1e-7 in float32). The exported SavedModel stays fp32
    and untouched; fp32 outputs are returned exactly as the graph gives them.
    """
    rows = probabilities.astype(np.float64)
    np.clip(rows, 0.0, None, out=rows)
    totals = rows.sum(axis=1, keepdims=True)
    return np.divide(rows, totals, out=rows, where=totals > 0).astype(np.float32)


def _tensor_info(spec: tf.TensorSpec, name: str) -> dict[str, Any]:
    """A TensorSpec in TensorFlow Serving's signature_def JSON shape."""
    dims = [{"size": str(-1 if d is None else d), "name": ""} for d in spec.shape.as_list()]
    return {
        "dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),  # DT_UINT8, DT_FLOAT
        "tensor_shape": {"dim": dims, "unknown_rank": False},
        "name": name,
    }


def _signature_def(inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "inputs": {k: _tensor_info(v, f"{SERVING_SIGNATURE}_{k}:0") for k, v in inputs.items()},
        "outputs": {
            k: _tensor_info(v, f"StatefulPartitionedCall:{i}")
            for i, (k, v) in enumerate(sorted(outputs.items()))
        },
        "method_name": "tensorflow/serving/predict",
    }


def contract_signature_def(size: int, classes: int) -> dict[str, Any]:
    """The signature_def `serving_default` has by the export contract (for an int8
    version, whose SavedModel is not loaded)."""
    return _signature_def(
        {INPUT_NAME: tf.TensorSpec([None, size, size, 3], tf.uint8)},
        {OUTPUT_NAME: tf.TensorSpec([None, classes], tf.float32)},
    )


def check_signature(fn: Any, size: int, classes: int) -> dict[str, Any]:
    """Raise InvalidModelError unless `fn` keeps the contract; return its signature_def."""
    inputs = fn.structured_input_signature[1]
    if INPUT_NAME not in inputs:
        raise InvalidModelError(
            f"{SERVING_SIGNATURE} has no input named {INPUT_NAME!r} (has {sorted(inputs)})"
        )
    spec = inputs[INPUT_NAME]
    if spec.dtype != tf.uint8 or spec.shape.as_list()[1:] != [size, size, 3]:
        raise InvalidModelError(
            f"{SERVING_SIGNATURE} input {INPUT_NAME!r} is {spec.dtype.name} {spec.shape}; "
            f"metadata promises uint8 [batch, {size}, {size}, 3]"
        )
    outputs = fn.structured_outputs
    if OUTPUT_NAME not in outputs:
        raise InvalidModelError(f"{SERVING_SIGNATURE} has no output named {OUTPUT_NAME!r}")
    width = outputs[OUTPUT_NAME].shape.as_list()[-1]
    if width is not None and width != classes:
        raise InvalidModelError(
            f"the model outputs {width} classes but metadata has {classes} labels"
        )
    return _signature_def(inputs, outputs)


def int8_problem(path: Path, meta: ModelMetadata) -> str | None:
    """Why this version cannot run its int8 artifact (None: under int8 it runs it, whole)."""
    problem = artifact_problem(path, meta)
    if problem is None and meta.unknown is not None:
        # The scorer and explain are signatures of the SavedModel; the artifact only
        # answers probabilities, and one version must not answer from two graphs.
        problem = "its unknown scorer runs on the SavedModel; the int8 artifact lacks it"
    return problem


def load_published(
    path: Path, runtime: Runtime | None = None, int8_streams: int = DEFAULT_STREAMS
) -> PublishedModel:
    """Load `models/NAME` (its latest version) or `models/NAME/N`; checked, not warmed up.

    `runtime` (from `modelstore.runtime.configure_runtime`, called once per
    process before loading) says where and in which precision it runs; without
    one the model runs on the CPU in whatever precision the process has set.
    Raises InvalidModelError with the reason when the folder breaks the format, and
    PrecisionUnavailableError when int8 was asked for and the version cannot run it.
    """
    device = runtime.device if runtime is not None else "/CPU:0"
    precision = runtime.precision.effective if runtime is not None else "fp32"
    path = resolve_model_path(Path(path))
    meta = read_metadata(path)
    if runtime is not None and runtime.precision.int8:
        problem = int8_problem(path, meta)
        if problem is None:
            signature_def = contract_signature_def(meta.image_size, len(meta.labels))
            try:
                int8 = load_int8(path, int8_streams)
            except Exception as exc:  # OpenVINO raises RuntimeError and its own types
                raise InvalidModelError(
                    f"the int8 artifact does not compile: {type(exc).__name__}: {exc}"
                ) from exc
            return PublishedModel(path, meta, "/CPU:0", "int8", signature_def, None, int8)
        if precision == "int8":
            raise PrecisionUnavailableError(
                f"{meta.name} version {meta.version} cannot run in int8: {problem}"
            )
        log.info(
            "%s version %d runs in %s, not int8: %s", meta.name, meta.version, precision, problem
        )
    try:
        with tf.device(device):
            saved = tf.saved_model.load(str(path))
    except Exception as exc:  # TensorFlow raises many types for a damaged SavedModel
        raise InvalidModelError(
            f"the SavedModel does not load: {type(exc).__name__}: {exc}"
        ) from exc
    signatures = getattr(saved, "signatures", {})
    if SERVING_SIGNATURE not in signatures:
        raise InvalidModelError(
            f"signature {SERVING_SIGNATURE!r} is missing (has {sorted(signatures)})"
        )
    fn = signatures[SERVING_SIGNATURE]
    signature_def = check_signature(fn, meta.image_size, len(meta.labels))
    beyond = load_beyond_label(saved, meta)
    return PublishedModel(path, meta, device, precision, signature_def, saved, fn, beyond)
