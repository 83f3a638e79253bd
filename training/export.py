"""Export a classifier as a TensorFlow SavedModel with the signatures DESIGN.md promises.

- `serving_default`: `images` uint8 `[batch, size, size, 3]` RGB -> `probabilities`
  float32 `[batch, num_classes]`. VGG16 preprocessing runs inside the graph.
- `serve_bytes`: `image_bytes` string `[batch]` (encoded JPEG/PNG/GIF/BMP) ->
  `probabilities`, for TensorFlow Serving REST clients that send `{"b64": ...}`.
  It decodes and resizes with TensorFlow's ops, which differ slightly from
  Pillow's; our own service always decodes with `imaging.load_image` and calls
  `serving_default`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from training.repository import METADATA_FILE, publish_version

SERVING_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "serve_bytes"
INPUT_NAME = "images"
BYTES_INPUT_NAME = "image_bytes"
OUTPUT_NAME = "probabilities"
METADATA_FORMAT = 1


def package_version() -> str:
    try:
        return importlib_metadata.version("vgg-transfer-service")
    except importlib_metadata.PackageNotFoundError:
        return "0+unknown"


def _decode_for_graph(image_size: int) -> Any:
    def decode_one(encoded: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        resized = tf.image.resize(image, [image_size, image_size], antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

    return decode_one


def write_savedmodel(model: keras.Model, path: Path, image_size: int) -> None:
    """Write `model` (uint8 images -> probabilities) as a SavedModel with both signatures.

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
        return {OUTPUT_NAME: model(images, training=False)}

    module = tf.Module()
    module.model = model  # tracks the variables once
    module.serve_images = serve_images
    module.serve_bytes = serve_bytes
    tf.saved_model.save(
        module,
        str(path),
        signatures={SERVING_SIGNATURE: serve_images, BYTES_SIGNATURE: serve_bytes},
    )


def base_metadata(
    name: str, version: int, labels: list[str], image_size: int, base_weights: dict[str, str]
) -> dict[str, Any]:
    """The fields every exported version carries; callers add training details."""
    return {
        "format_version": METADATA_FORMAT,
        "name": name,
        "version": version,
        "labels": list(labels),
        "image_size": image_size,
        "signatures": {
            SERVING_SIGNATURE: {
                "inputs": {
                    INPUT_NAME: {"dtype": "uint8", "shape": [-1, image_size, image_size, 3]}
                },
                "outputs": {OUTPUT_NAME: {"dtype": "float32", "shape": [-1, len(labels)]}},
            },
            BYTES_SIGNATURE: {
                "inputs": {BYTES_INPUT_NAME: {"dtype": "string", "shape": [-1]}},
                "outputs": {OUTPUT_NAME: {"dtype": "float32", "shape": [-1, len(labels)]}},
            },
        },
        "base_weights": dict(base_weights),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "package_version": package_version(),
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
    }


def export_version(
    model: keras.Model,
    models_dir: Path,
    name: str,
    labels: list[str],
    image_size: int,
    base_weights: dict[str, str],
    extra_metadata: dict[str, Any] | None = None,
    extra_files: Any = None,
    gate: Callable[[], dict[str, Any]] | None = None,
) -> tuple[int, Path]:
    """Publish `model` as the next version of `name`; returns `(version, path)`.

    `extra_files(tmp_dir)`, if given, writes plots or reports beside the
    SavedModel before the version becomes visible. `gate()`, if given, runs
    under the publish lock before anything is written, so no other job can
    publish between the check and this version; it raises to publish nothing,
    and what it returns is recorded as `gate` in the metadata.
    """
    if model.output_shape[-1] != len(labels):
        raise ValueError(f"model has {model.output_shape[-1]} outputs but {len(labels)} labels")

    def write(tmp: Path, version: int) -> None:
        passed = gate() if gate is not None else None
        write_savedmodel(model, tmp, image_size)
        meta = base_metadata(name, version, labels, image_size, base_weights)
        meta.update(extra_metadata or {})
        if passed is not None:
            meta["gate"] = passed
        if extra_files is not None:
            extra_files(tmp)
        # metadata.json last: its presence marks a complete version folder.
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")

    return publish_version(Path(models_dir), name, write)
