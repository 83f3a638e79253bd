"""The split half of an export: the base's identity, a `features` signature, the head alone.

A classifier made by `training.model.build_classifier` is `uint8 pixels -> VGG16
preprocessing -> frozen base -> head (-> mean of mirror images)`. Besides the
complete SavedModel (which stays portable: TensorFlow Serving serves it alone),
the export records what a server needs to run many heads on one base
(`modelstore.base_identity`): the base's identity in metadata.json, a
`features` signature in the SavedModel (pixels -> the base's features), and the
head as its own tiny SavedModel in `head/` (features -> probabilities).

A model of another shape (the full ImageNet VGG16) has no parts: it is exported
and served whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from modelstore.base_identity import (
    HEAD_DIR,
    VGG16_PREPROCESSING,
    BaseIdentity,
    HeadRecord,
    weights_digest,
)
from modelstore.contract import (
    FEATURES_NAME,
    INPUT_NAME,
    MIRROR_FEATURES_NAME,
    OUTPUT_NAME,
    SERVING_SIGNATURE,
)
from modelstore.unknown import HEAD_UNKNOWN_SIGNATURE, UNKNOWN_FLAG_NAME, UNKNOWN_SCORE_NAME
from training.unknown import UnknownScorer, knn_distance, pooled

# The layer names `build_classifier` and `build_head` give the parts.
PREPROCESS_LAYER = "vgg_preprocess"
MIRROR_LAYER = "with_mirror"
HEAD_LAYER = "head"


@dataclass(frozen=True)
class ClassifierParts:
    preprocess: keras.layers.Layer
    base: keras.Model  # frozen, cut at its last layer
    head: keras.Model
    mirror: bool  # the classifier averages each picture with its mirror image


def classifier_parts(model: keras.Model) -> ClassifierParts | None:
    """The parts of a `build_classifier` model; None for any other shape (served whole)."""
    layers = {layer.name: layer for layer in model.layers}
    head, preprocess = layers.get(HEAD_LAYER), layers.get(PREPROCESS_LAYER)
    if not isinstance(head, keras.Model) or preprocess is None:
        return None
    bases = [
        layer for layer in model.layers if isinstance(layer, keras.Model) and layer is not head
    ]
    if len(bases) != 1 or bases[0].trainable:  # only a frozen base can be shared
        return None
    return ClassifierParts(preprocess, bases[0], head, MIRROR_LAYER in layers)


def base_identity(parts: ClassifierParts, image_size: int) -> BaseIdentity:
    """The identity of the base as exported: its weights hashed as used, cut layer, sizes."""
    arrays = [
        (f"{layer.name}/{index}", value)
        for layer in parts.base.layers
        for index, value in enumerate(layer.get_weights())
    ]
    return BaseIdentity(
        weights_sha256=weights_digest(arrays),
        layer=parts.base.layers[-1].name,
        image_size=image_size,
        preprocessing=VGG16_PREPROCESSING,
        feature_shape=[int(d) for d in parts.base.output_shape[1:]],
    )


def features_function(parts: ClassifierParts, image_size: int) -> Any:
    """The `features` signature: uint8 images -> the base's features (preprocessing inside)."""
    spec = tf.TensorSpec([None, image_size, image_size, 3], tf.uint8, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def features(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {FEATURES_NAME: parts.base(parts.preprocess(images), training=False)}

    return features


def write_head_savedmodel(
    parts: ClassifierParts,
    folder: Path,
    feature_shape: list[int],
    scorer: UnknownScorer | None = None,
) -> None:
    """The head alone as a SavedModel: `features` [n, ...] -> `probabilities` [n, classes].

    A mirror head also takes `mirror_features` and averages the two answers exactly
    as the whole model does (one head call on both halves, then their mean). With a
    `scorer`, `head_with_unknown` also answers `unknown_score` and `unknown`, scored on
    the (unmirrored) features as `predict_with_unknown` scores them.
    """
    head = parts.head
    spec = tf.TensorSpec([None, *feature_shape], tf.float32, name=FEATURES_NAME)
    mirror_spec = tf.TensorSpec([None, *feature_shape], tf.float32, name=MIRROR_FEATURES_NAME)

    def probabilities(features: tf.Tensor, mirror_features: tf.Tensor | None) -> tf.Tensor:
        if mirror_features is None:
            return head(features, training=False)
        both = head(tf.concat([features, mirror_features], axis=0), training=False)
        n = tf.shape(features)[0]
        return (both[:n] + both[n:]) / 2.0

    module = tf.Module()
    module.head = head
    specs = [spec, mirror_spec] if parts.mirror else [spec]

    @tf.function(input_signature=specs)
    def serve(*inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_NAME: probabilities(inputs[0], inputs[1] if parts.mirror else None)}

    module.serve = serve
    signatures = {SERVING_SIGNATURE: serve}
    if scorer is not None:
        module.bank = tf.Variable(scorer.bank, trainable=False, name="unknown_bank")
        threshold = tf.constant(scorer.threshold, tf.float32)

        @tf.function(input_signature=specs)
        def serve_unknown(*inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            probs = probabilities(inputs[0], inputs[1] if parts.mirror else None)
            score = knn_distance(pooled(inputs[0], scorer.pooling), module.bank, scorer.k)
            return {
                OUTPUT_NAME: probs,
                UNKNOWN_SCORE_NAME: score,
                UNKNOWN_FLAG_NAME: score > threshold,
            }

        module.serve_unknown = signatures[HEAD_UNKNOWN_SIGNATURE] = serve_unknown
    tf.saved_model.save(module, str(folder), signatures=signatures)


def export_parts(
    parts: ClassifierParts,
    version_dir: Path,
    image_size: int,
    scorer: UnknownScorer | None = None,
) -> dict[str, Any]:
    """Write `head/` into the version folder; the metadata fields that describe the split."""
    identity = base_identity(parts, image_size)
    write_head_savedmodel(parts, Path(version_dir) / HEAD_DIR, identity.feature_shape, scorer)
    record = HeadRecord(
        path=HEAD_DIR,
        mirror=parts.mirror,
        unknown_signature=HEAD_UNKNOWN_SIGNATURE if scorer is not None else None,
    )
    return {"base_identity": identity, "head": record}
