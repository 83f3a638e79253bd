"""The reader of split versions: one base (`features` signature) and many heads (`head/`).

A version whose metadata.json has `base_identity` and `head`
(`modelstore.base_identity`) can run as two parts: the frozen base, shared by
every version of the same identity, and its own small head. The base is loaded
from the first such version's complete SavedModel (its `features` signature);
every other version of that identity loads only its head-only SavedModel, a few
kB to MB instead of the base's ~60 MB. Their complete SavedModel is only parsed
(not loaded) to check that it keeps the export contract, so a damaged export is
refused as it would be when served whole.

A version fitted with an unknown scorer runs split when its head export carries
the scorer (`HeadRecord.unknown_signature`, `head_with_unknown`): the head then
answers the probabilities and the unknown score from the base's features. Older
exports, whose head has no such signature, are served whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.python.saved_model import loader_impl

from modelstore.base_identity import BaseIdentity, HeadRecord
from modelstore.contract import (
    FEATURES_NAME,
    FEATURES_SIGNATURE,
    INPUT_NAME,
    MIRROR_FEATURES_NAME,
    OUTPUT_NAME,
    SERVING_SIGNATURE,
)
from modelstore.layout import resolve_model_path
from modelstore.loader import int8_problem
from modelstore.metadata import InvalidModelError, ModelMetadata, read_metadata
from modelstore.runtime import Runtime
from modelstore.unknown import UNKNOWN_SCORE_NAME
from modelstore.unknown_signatures import HeadScorer, load_head_scorer

# Precisions the split parts run in: TensorFlow's graph rewriter applies to them as to a
# whole model. Anything else (a separate int8 artifact) is served whole.
SPLIT_PRECISIONS = ("fp32", "bf16", "fp16")


def split_refusal(meta: ModelMetadata, precision: str) -> str | None:
    """Why this version cannot run as base + head (None: it can)."""
    if meta.base_identity is None or meta.head is None:
        return "its export records no base identity and head (exported whole only)"
    if meta.unknown is not None and not meta.head.unknown_signature:
        return "its head export has no unknown-score signature (the score needs the whole model)"
    if meta.base_identity.image_size != meta.image_size:
        return "its base identity's input size differs from the model's"
    if precision not in SPLIT_PRECISIONS:
        return f"precision {precision} runs whole models only"
    return None


def runtime_split_refusal(path: Path, meta: ModelMetadata, runtime: Runtime | None) -> str | None:
    """`split_refusal` under this runtime: under int8, a version whose int8 artifact is
    ready runs that artifact whole (`load_published`), never its fp32 head on a base."""
    if runtime is not None and runtime.precision.int8 and int8_problem(path, meta) is None:
        return "it runs its int8 artifact, which is whole"
    return split_refusal(meta, _runtime(runtime)[1])


def _call(fn: Any, device: str, what: str, n: int, **inputs: Any) -> np.ndarray:
    """Run a signature, its first output; see `_run`."""
    return np.asarray(next(iter(_run(fn, device, what, n, **inputs).values())), np.float32)


def _run(fn: Any, device: str, what: str, n: int, **inputs: Any) -> dict[str, np.ndarray]:
    """Run a signature; TensorFlow's out-of-memory becomes MemoryError (a 503, not a 500)."""
    try:
        with tf.device(device):
            out = fn(**inputs)
    except tf.errors.ResourceExhaustedError as exc:
        raise MemoryError(
            f"TensorFlow ran out of memory running {what} on a batch of {n} on {device}: "
            f"{exc.message}"
        ) from exc
    return {key: value.numpy() for key, value in out.items()}


@dataclass
class LoadedBase:
    """A frozen base, loaded once per identity: uint8 images -> features."""

    identity: BaseIdentity
    path: Path  # the version folder it was loaded from
    device: str
    precision: str
    _saved: Any
    _fn: Any

    def features(self, images: np.ndarray) -> np.ndarray:
        """uint8 `[n, s, s, 3]` -> float32 `[n, *feature_shape]`."""
        return _call(
            self._fn, self.device, "the base", len(images), **{INPUT_NAME: tf.constant(images)}
        )

    @property
    def released(self) -> bool:
        return self._fn is None

    def release(self) -> None:
        self._fn = None
        self._saved = None


@dataclass
class PublishedHead:
    """One version's head, run on features its base computed; reads like a PublishedModel."""

    path: Path
    metadata: ModelMetadata
    device: str
    precision: str
    signature_def: dict[str, Any]  # of the complete SavedModel's serving_default
    identity: BaseIdentity
    record: HeadRecord
    _saved: Any
    _fn: Any
    beyond: HeadScorer | None = None  # the unknown scorer, when the version has one

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

    @property
    def mirror(self) -> bool:
        return self.record.mirror

    def predict(self, features: np.ndarray, mirror_features: np.ndarray | None) -> np.ndarray:
        """Features (and, for a mirror head, the mirror images' features) -> probabilities."""
        inputs = self._inputs(features, mirror_features)
        return _call(self._fn, self.device, f"the head of {self.name}", len(features), **inputs)

    def predict_packed(
        self, features: np.ndarray, mirror_features: np.ndarray | None
    ) -> np.ndarray:
        """What the batcher runs: probabilities `[n, classes]`, or `[n, classes + 1]` with
        the unknown score as the last column when the version has a scorer (the layout
        of `service.unknown_outputs.packed_predict` for a whole model)."""
        if self.beyond is None:
            return self.predict(features, mirror_features)
        what, inputs = f"the head of {self.name}", self._inputs(features, mirror_features)
        out = _run(self.beyond.scoring, self.device, what, len(features), **inputs)
        probs = np.asarray(out[OUTPUT_NAME], np.float32)
        return np.concatenate([probs, np.asarray(out[UNKNOWN_SCORE_NAME], np.float32)[:, None]], 1)

    def explain(
        self, pictures: np.ndarray, class_index: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """As `PublishedModel.explain`, from the version's complete SavedModel (`HeadScorer`);
        ValueError for a version without a scorer."""
        if self.beyond is None:
            raise ValueError(f"{self.name} version {self.version} has no unknown scorer")
        beyond = self.beyond
        try:
            with tf.device(self.device):
                return beyond.explain(tf.constant(pictures, dtype=tf.uint8), class_index)
        except tf.errors.ResourceExhaustedError as exc:
            raise MemoryError(
                f"TensorFlow ran out of memory explaining a batch of {len(pictures)} on "
                f"{self.device}: {exc.message}"
            ) from exc

    def _inputs(
        self, features: np.ndarray, mirror_features: np.ndarray | None
    ) -> dict[str, tf.Tensor]:
        inputs = {FEATURES_NAME: tf.constant(features)}
        if self.mirror:
            if mirror_features is None:
                raise ValueError(f"{self.name} v{self.version} needs the mirror-image features")
            inputs[MIRROR_FEATURES_NAME] = tf.constant(mirror_features)
        return inputs

    @property
    def released(self) -> bool:
        return self._fn is None

    def release(self) -> None:
        self._fn = None
        self._saved = None
        if self.beyond is not None:
            self.beyond.release()


def _load(path: Path, device: str) -> Any:
    try:
        with tf.device(device):
            return tf.saved_model.load(str(path))
    except Exception as exc:  # TensorFlow raises many types for a damaged SavedModel
        raise InvalidModelError(
            f"the SavedModel in {path.name} does not load: {type(exc).__name__}: {exc}"
        ) from exc


def _signature(saved: Any, name: str, where: str) -> Any:
    signatures = getattr(saved, "signatures", {})
    if name not in signatures:
        raise InvalidModelError(f"{where} has no signature {name!r} (has {sorted(signatures)})")
    return signatures[name]


def _runtime(runtime: Runtime | None) -> tuple[str, str]:
    if runtime is None:
        return "/CPU:0", "fp32"
    return runtime.device, runtime.precision.effective


def load_base(path: Path, runtime: Runtime | None = None) -> LoadedBase:
    """The base of a split version: its complete SavedModel, used through `features`."""
    device, precision = _runtime(runtime)
    path = resolve_model_path(Path(path))
    meta = read_metadata(path)
    if meta.base_identity is None:
        raise InvalidModelError(f"{path} records no base identity")
    identity = meta.base_identity
    saved = _load(path, device)
    fn = _signature(saved, FEATURES_SIGNATURE, "the SavedModel")
    spec = fn.structured_input_signature[1].get(INPUT_NAME)
    out = fn.structured_outputs.get(FEATURES_NAME)
    size = identity.image_size
    if spec is None or spec.dtype != tf.uint8 or spec.shape.as_list()[1:] != [size, size, 3]:
        raise InvalidModelError(
            f"{FEATURES_SIGNATURE} does not take uint8 [batch, {size}, {size}, 3]"
        )
    if out is None or out.shape.as_list()[1:] != identity.feature_shape:
        raise InvalidModelError(
            f"{FEATURES_SIGNATURE} does not answer {FEATURES_NAME!r} of shape "
            f"{identity.feature_shape} as its base identity says"
        )
    return LoadedBase(identity, path, device, precision, saved, fn)


def _tensor_info_json(info: Any) -> dict[str, Any]:
    dims = [{"size": str(d.size), "name": ""} for d in info.tensor_shape.dim]
    return {
        "dtype": types_pb2.DataType.Name(info.dtype),
        "tensor_shape": {"dim": dims, "unknown_rank": bool(info.tensor_shape.unknown_rank)},
        "name": info.name,
    }


def parsed_signature_def(path: Path, size: int, classes: int) -> dict[str, Any]:
    """serving_default of the complete SavedModel, from saved_model.pb alone (no variables).

    The same checks as `loader.check_signature`, on the protobuf: a version whose
    complete export is damaged is refused even when only its head would be loaded.
    """
    try:
        proto = loader_impl.parse_saved_model(str(path))
    except Exception as exc:  # a missing or garbled saved_model.pb: IOError, DecodeError, ...
        raise InvalidModelError(
            f"the SavedModel does not load: {type(exc).__name__}: {exc}"
        ) from exc
    signatures = proto.meta_graphs[0].signature_def if proto.meta_graphs else {}
    if SERVING_SIGNATURE not in signatures:
        raise InvalidModelError(
            f"signature {SERVING_SIGNATURE!r} is missing (has {sorted(signatures)})"
        )
    sig = signatures[SERVING_SIGNATURE]
    image = sig.inputs.get(INPUT_NAME)
    dims = [d.size for d in image.tensor_shape.dim] if image is not None else []
    if image is None or image.dtype != types_pb2.DT_UINT8 or dims[1:] != [size, size, 3]:
        raise InvalidModelError(
            f"{SERVING_SIGNATURE} does not take uint8 {INPUT_NAME!r} [batch, {size}, {size}, 3]"
        )
    probs = sig.outputs.get(OUTPUT_NAME)
    if probs is None:
        raise InvalidModelError(f"{SERVING_SIGNATURE} has no output named {OUTPUT_NAME!r}")
    width = probs.tensor_shape.dim[-1].size if probs.tensor_shape.dim else -1
    if width not in (-1, classes):
        raise InvalidModelError(
            f"the model outputs {width} classes but metadata has {classes} labels"
        )
    return {
        "inputs": {k: _tensor_info_json(v) for k, v in sorted(sig.inputs.items())},
        "outputs": {k: _tensor_info_json(v) for k, v in sorted(sig.outputs.items())},
        "method_name": sig.method_name or "tensorflow/serving/predict",
    }


def load_head(path: Path, runtime: Runtime | None = None) -> PublishedHead:
    """One split version's head (checked), without loading its copy of the base."""
    device, precision = _runtime(runtime)
    path = resolve_model_path(Path(path))
    meta = read_metadata(path)
    refusal = runtime_split_refusal(path, meta, runtime)
    if refusal is not None:
        raise InvalidModelError(f"{path} cannot be served as base + head: {refusal}")
    assert meta.base_identity is not None and meta.head is not None  # split_refusal said so
    identity, record = meta.base_identity, meta.head
    signature_def = parsed_signature_def(path, meta.image_size, len(meta.labels))
    head_dir = path / record.path
    saved = _load(head_dir, device)
    fn = _signature(saved, SERVING_SIGNATURE, f"the head SavedModel {record.path}/")
    inputs = fn.structured_input_signature[1]
    wanted = {FEATURES_NAME, MIRROR_FEATURES_NAME} if record.mirror else {FEATURES_NAME}
    if set(inputs) != wanted:
        raise InvalidModelError(f"the head takes {sorted(inputs)}; expected {sorted(wanted)}")
    for spec in inputs.values():
        if spec.dtype != tf.float32 or spec.shape.as_list()[1:] != identity.feature_shape:
            raise InvalidModelError(
                f"the head takes {spec.dtype.name} {spec.shape}; its base answers float32 "
                f"[batch, {', '.join(map(str, identity.feature_shape))}]"
            )
    out = fn.structured_outputs.get(OUTPUT_NAME)
    width = out.shape.as_list()[-1] if out is not None else None
    if width != len(meta.labels):
        raise InvalidModelError(
            f"the head outputs {width} classes but metadata has {len(meta.labels)} labels"
        )
    beyond = load_head_scorer(path, saved, meta, fn, device)
    return PublishedHead(
        path, meta, device, precision, signature_def, identity, record, saved, fn, beyond
    )
