"""Export a classifier as a TensorFlow SavedModel with the signatures of `modelstore.contract`.

- `serving_default`: `images` uint8 `[batch, size, size, 3]` RGB -> `probabilities`
  float32 `[batch, num_classes]`. VGG16 preprocessing runs inside the graph.
- `serve_bytes`: `image_bytes` string `[batch]` (encoded JPEG/PNG/GIF/BMP) ->
  `probabilities`, for TensorFlow Serving REST clients that send `{"b64": ...}`.
  It decodes and resizes with TensorFlow's ops, which differ slightly from
  Pillow's; our own service always decodes with `imaging.load_image` and calls
  `serving_default`.
- `features` (a classifier made by `build_classifier` only): `images` -> the frozen
  base's `features`; with the head-only SavedModel in `head/` and the base's
  identity in metadata.json, a server runs one base for many heads
  (`training.head_export`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from modelstore.contract import (
    BYTES_INPUT_NAME,
    BYTES_SIGNATURE,
    FEATURES_SIGNATURE,
    INPUT_NAME,
    OUTPUT_NAME,
    SERVING_SIGNATURE,
    signature_summary,
)
from modelstore.layout import Draft, reserve_version
from modelstore.metadata import BaseWeightsRecord, ModelMetadata, package_version, write_metadata
from training.head_export import classifier_parts, export_parts, features_function
from training.reports.model_card import write_model_card


def _decode_for_graph(image_size: int) -> Any:
    def decode_one(encoded: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        resized = tf.image.resize(image, [image_size, image_size], antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

    return decode_one


def write_savedmodel(
    model: keras.Model, path: Path, image_size: int, extra: tf.Module | None = None
) -> dict[str, Any]:
    """Write `model` (uint8 images -> probabilities) as a SavedModel with its signatures.

    Returns the metadata fields of the split (`base_identity`, `head`), empty for a
    model that is served whole only; pass them on to `new_metadata`.

    `extra`: a module whose `signatures()` adds signatures beside these two (the
    unknown score and the explanation, `training.unknown.ExtraSignatures`).

    Plain `tf.saved_model.save` on a `tf.Module` rather than Keras' ExportArchive:
    ExportArchive (Keras 3.15) stores every variable twice, doubling the export on
    disk and the memory of whoever loads it.
    """
    decode_one = _decode_for_graph(image_size)
    images_spec = tf.TensorSpec([None, image_size, image_size, 3], tf.uint8, name=INPUT_NAME)
    bytes_spec = tf.TensorSpec([None], tf.string, name=BYTES_INPUT_NAME)

    @tf.function(input_signature=[images_spec])
    def serve_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_NAME: model(images, training=False)}

    @tf.function(input_signature=[bytes_spec])
    def serve_bytes(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        images = tf.map_fn(
            decode_one,
            image_bytes,
            fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.uint8),
        )
        # The images signature's graph, called rather than traced a second time: tracing
        # the classifier is most of an export's time. Our service runs `serve_images`,
        # whose graph stays flat (no nested call) for Grappler's precision rewrite.
        return serve_images(images)

    module = tf.Module()
    # The weights the signatures read, tracked once, and nothing else: tracking the model
    # itself would also save its head's optimizer (Adam's two slots per weight: with the
    # default head, 38 of an export's 87 MB), which serving never reads.
    module.weights = [weight.value for weight in model.weights]
    module.serve_images = serve_images
    module.serve_bytes = serve_bytes
    signatures = {SERVING_SIGNATURE: serve_images, BYTES_SIGNATURE: serve_bytes}
    if extra is not None:
        module.extra = extra
        signatures.update(extra.signatures())
    parts = classifier_parts(model)
    if parts is not None:
        module.features = signatures[FEATURES_SIGNATURE] = features_function(parts, image_size)
    tf.saved_model.save(module, str(path), signatures=signatures)
    if parts is None:
        return {}
    # The head-only export carries the unknown scorer too, so that such a version can
    # also run on a shared base.
    return export_parts(parts, path, image_size, getattr(extra, "scorer", None))


def new_metadata(
    draft: Draft,
    labels: list[str],
    image_size: int,
    base_weights: dict[str, str],
    **fields: Any,
) -> ModelMetadata:
    """The metadata of a version being published; `fields` add training details."""
    if len(labels) < 2:
        raise ValueError(f"a classifier needs at least two labels, got {labels}")
    return ModelMetadata(
        name=draft.name,
        version=draft.version,
        labels=list(labels),
        image_size=image_size,
        signatures=signature_summary(image_size, len(labels)),
        base_weights=BaseWeightsRecord(**base_weights),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        package_version=package_version(),
        tensorflow_version=tf.__version__,
        keras_version=keras.__version__,
        **fields,
    )


def publish_classifier(
    model: keras.Model,
    models_dir: Path,
    name: str,
    labels: list[str],
    image_size: int,
    base_weights: dict[str, str],
    **fields: Any,
) -> Draft:
    """Publish `model` as the next version of `name` (SavedModel, card, metadata); returns it.

    For exports with nothing else to check or write; `fit` spells the same steps
    out because it gates and plots inside the reservation.
    """
    if model.output_shape[-1] != len(labels):
        raise ValueError(f"model has {model.output_shape[-1]} outputs but {len(labels)} labels")
    with reserve_version(Path(models_dir), name) as draft:
        split = write_savedmodel(model, draft.path, image_size)
        metadata = new_metadata(draft, labels, image_size, base_weights, **split, **fields)
        write_model_card(draft.path, metadata)
        write_metadata(draft.path, metadata)
    return draft
