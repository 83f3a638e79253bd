"""The "unknown" scorer fitted at training time, and the two extra signatures it exports.

Score: the cosine distance from a picture's pooled cut features (global average
and global max pooling, each unit length) to its nearest training photo (the
training photos and their mirror images are the bank). Compared by measurement
(`python -m bench.unknown research`, `bench/results/unknown_research.json`):
k-NN on several poolings and layers, Mahalanobis distances, the head's max
softmax and its energy, each fitted on the training photos only and scored once
on other-class photos.

Threshold: the score that flags `FitConfig.unknown_rate` (5 %) of the validation
photos, which are scored as the export scores them (to float32 rounding, which
`calibrated_threshold` leaves room for).

The exported signatures (names in `modelstore.unknown`):
- `predict_with_unknown`: the classifier's probabilities (the same graph as
  `serving_default`) and the score, from one pass of the base;
- `explain`: Grad-CAM on the last convolution of the cut for the predicted (or
  a requested) class, with `tf.GradientTape` inside the exported function, so
  the service computes it from the SavedModel alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from modelstore.contract import INPUT_NAME, OUTPUT_NAME
from modelstore.unknown import (
    CLASS_INPUT_NAME,
    EXPLAIN_SIGNATURE,
    HEATMAP_NAME,
    UNKNOWN_FLAG_NAME,
    UNKNOWN_SCORE_NAME,
    UNKNOWN_SIGNATURE,
    UnknownRecord,
)
from training.features.stream import ArrayFeatures, FeatureBatches, feature_batches
from training.model import VGGPreprocess

METHOD = "knn-cosine"
POOLINGS = ("gap", "gap+gmp", "sqrt-gap")
# The k-NN candidate with the best leave-one-class-out proxy on the training photos
# (bench/results/unknown_research.json, which also lists every other candidate and what
# the proxy would have chosen across all families).
DEFAULT_POOLING = "gap+gmp"
DEFAULT_K = 1


def pooled(fmap: tf.Tensor | np.ndarray, pooling: str) -> tf.Tensor:
    """`[n, h, w, c]` cut features -> `[n, d]` unit vectors: what the scorer compares.

    One function for the fit (on cached features) and the exported graph, so the
    threshold is calibrated on exactly the numbers the service computes. In float64:
    grappler's automatic mixed precision (bf16 on AMX CPUs, fp16 on GPUs) rewrites
    float32 pooling and matrix products, and the distances that matter differ in the
    third decimal; measured, a bf16 score flagged 8 % of the validation photos at a
    threshold calibrated for 5 %.
    """
    fmap = tf.cast(fmap, tf.float64)
    mean = tf.reduce_mean(fmap, axis=[1, 2])
    if pooling == "gap":
        parts = [mean]
    elif pooling == "gap+gmp":
        parts = [mean, tf.reduce_max(fmap, axis=[1, 2])]
    elif pooling == "sqrt-gap":
        parts = [tf.sqrt(tf.nn.relu(mean))]
    else:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    # Each part unit length, then the whole: parts of different scales weigh the same.
    return tf.math.l2_normalize(
        tf.concat([tf.math.l2_normalize(p, axis=1) for p in parts], axis=1), axis=1
    )


def knn_distance(features: tf.Tensor, bank: tf.Tensor, k: int) -> tf.Tensor:
    """`[n]` float32: 1 - cosine similarity to the k-th most similar row of `bank` (unit
    rows), computed in float64 (see `pooled`)."""
    features, bank = tf.cast(features, tf.float64), tf.cast(bank, tf.float64)
    similarity = tf.matmul(features, bank, transpose_b=True)
    return tf.cast(1.0 - tf.math.top_k(similarity, k=k).values[:, k - 1], tf.float32)


@dataclass
class UnknownScorer:
    """A fitted k-NN scorer: its bank of unit vectors and calibrated threshold."""

    pooling: str
    k: int
    bank: np.ndarray  # [N, d] float32, unit rows
    threshold: float
    calibration: dict[str, Any] = field(default_factory=dict)

    def scores(self, fmap: np.ndarray, batch: int = 256) -> np.ndarray:
        """Scores of cut feature maps `[n, h, w, c]` (numpy, in batches)."""
        bank = tf.constant(self.bank)
        parts = [
            knn_distance(pooled(fmap[i : i + batch], self.pooling), bank, self.k).numpy()
            for i in range(0, len(fmap), batch)
        ]
        return np.concatenate(parts) if parts else np.zeros((0,), np.float32)

    def record(self) -> UnknownRecord:
        return UnknownRecord(
            method=METHOD,
            representation=f"{self.pooling} of the cut features, k={self.k}",
            threshold=self.threshold,
            calibration=self.calibration,
            bank_size=len(self.bank),
            pooling=self.pooling,
            k=self.k,
        )


# How far a picture's score may move between fit and export and keep its flag. Fit scores
# the features the extractor stored; the export recomputes them in another graph, with
# another batch (the mirror images beside the pictures under flip TTA), where float32
# convolutions may round differently (oneDNN picks kernels by batch shape and machine).
# A threshold equal to an observed score (the largest, when the rate flags none of a small
# validation split) then flagged that very photo once exported (1 of 12 where fit flagged
# 0). 1e-4 is far above float32 rounding and far below the gaps between scores that matter.
SCORE_TOLERANCE = 1e-4


def calibrated_threshold(scores: np.ndarray, rate: float) -> float:
    """A threshold that leaves at most `rate` of `scores` above it: past the highest score
    kept, by `SCORE_TOLERANCE` or half the gap to the next one, whichever is smaller, so
    the export's recomputed scores flag the same photos."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    keep = max(int(np.ceil(len(ordered) * (1.0 - rate))), 1)  # scores at or below it
    kept = ordered[keep - 1]
    above = ordered[keep] if keep < len(ordered) else np.inf
    return float(min(kept + SCORE_TOLERANCE, (kept + above) / 2.0))


def fit_unknown_scorer(
    train: np.ndarray | FeatureBatches,
    valid: np.ndarray | FeatureBatches,
    rate: float,
    train_flipped: np.ndarray | None = None,
    pooling: str = DEFAULT_POOLING,
    k: int = DEFAULT_K,
) -> UnknownScorer:
    """The bank from the training photos' cut features (and their mirrors); the threshold
    flags `rate` of the validation photos' features `valid`. Arrays, or examples read
    from the feature store a batch at a time (`training.features.stream`)."""

    def source(x: np.ndarray | FeatureBatches) -> FeatureBatches:
        return ArrayFeatures(x, np.zeros(len(x), np.int64)) if isinstance(x, np.ndarray) else x

    maps = [source(train)] if train_flipped is None else [source(train), source(train_flipped)]
    bank = np.concatenate(
        [pooled(xb, pooling).numpy() for m in maps for xb, _ in feature_batches(m, 512)]
    ).astype(np.float32)
    if len(bank) < k:
        raise ValueError(f"the unknown scorer needs at least {k} training photos")
    scorer = UnknownScorer(pooling, k, bank, 0.0)
    parts = [scorer.scores(xb) for xb, _ in feature_batches(source(valid), 512)]
    valid_scores = np.concatenate(parts) if parts else np.zeros((0,), np.float32)
    scorer.threshold = calibrated_threshold(valid_scores, rate)
    scorer.calibration = {
        "split": "valid",
        "photos": len(valid_scores),
        "target_flagged": rate,
        "flagged": round(float((valid_scores > scorer.threshold).mean()), 4),
        "score_quantiles": {
            q: round(float(np.quantile(valid_scores, float(q))), 6)
            for q in ("0.5", "0.9", "0.95", "0.99")
        },
    }
    return scorer


def _last_conv_split(base: keras.Model) -> tuple[keras.Model, list[keras.layers.Layer]]:
    """The cut as (input -> its last convolution, the layers after it): Grad-CAM's layer."""
    layers = base.layers
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise ValueError(f"{base.name} has no convolution to explain")
    last = convs[-1]
    return keras.Model(base.input, layers[last].output), layers[last + 1 :]


class ExtraSignatures(tf.Module):
    """`predict_with_unknown` and `explain` of one classifier, as a trackable module.

    `write_savedmodel` attaches it to the exported module (so the bank variable and
    the layers are saved once) and exports `signatures()` beside `serving_default`.
    """

    def __init__(
        self,
        base: keras.Model,
        head: keras.Model,
        image_size: int,
        flip_tta: bool,
        scorer: UnknownScorer,
    ) -> None:
        super().__init__(name="beyond_the_label")
        self.image_size = image_size
        self.flip_tta = flip_tta
        self.scorer = scorer  # also exported with the head alone (`training.head_export`)
        # The Keras objects are used, not tracked: a tracked Keras model (or the sub-models
        # below, which share its layers) is saved through its Keras variable wrappers and
        # the head's optimizer, beside the tf.Variables the exported module already tracks,
        # so every base and head weight was stored twice (70 MB instead of 33). Only the
        # underlying tf.Variables are tracked, once, as `write_savedmodel` tracks them.
        to_conv, tail = _last_conv_split(base)
        last_dense = head.get_layer(OUTPUT_NAME)
        self.base = self._no_dependency(base)
        self.head = self._no_dependency(head)
        self.preprocess = self._no_dependency(VGGPreprocess(name="vgg_preprocess_unknown"))
        self.to_conv = self._no_dependency(to_conv)
        self.tail = self._no_dependency(tail)
        self.last_dense = self._no_dependency(last_dense)
        self.penultimate = self._no_dependency(keras.Model(head.input, last_dense.input))
        self.weights = [weight.value for weight in [*base.weights, *head.weights]]
        self.bank = tf.Variable(scorer.bank, trainable=False, name="unknown_bank")
        self.threshold = tf.constant(scorer.threshold, tf.float32)
        self.k, self.pooling = scorer.k, scorer.pooling

    def signatures(self) -> dict[str, Any]:
        images_spec = tf.TensorSpec(
            [None, self.image_size, self.image_size, 3], tf.uint8, name=INPUT_NAME
        )
        class_spec = tf.TensorSpec([None], tf.int32, name=CLASS_INPUT_NAME)
        return {
            UNKNOWN_SIGNATURE: tf.function(
                self.predict_with_unknown, input_signature=[images_spec]
            ).get_concrete_function(),
            EXPLAIN_SIGNATURE: tf.function(
                self.explain, input_signature=[images_spec, class_spec]
            ).get_concrete_function(),
        }

    def predict_with_unknown(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        # The classifier's own arithmetic (build_classifier), with the cut features kept:
        # one pass of the base gives both the probabilities and the score.
        x = self.preprocess(images)
        n = tf.shape(x)[0]
        if self.flip_tta:
            x = tf.concat([x, tf.reverse(x, axis=[2])], axis=0)
        fmap = self.base(x, training=False)
        probs = self.head(fmap, training=False)
        if self.flip_tta:
            probs = (probs[:n] + probs[n:]) / 2.0
        score = knn_distance(pooled(fmap[:n], self.pooling), self.bank, self.k)
        return {
            OUTPUT_NAME: probs,
            UNKNOWN_SCORE_NAME: score,
            UNKNOWN_FLAG_NAME: score > self.threshold,
        }

    def explain(self, images: tf.Tensor, class_index: tf.Tensor) -> dict[str, tf.Tensor]:
        # The classifier's arithmetic again, split at the cut's last convolution so the
        # tape sees it: one forward pass (two with mirror TTA) gives the probabilities,
        # the unknown score and the heatmap; the backward pass covers the pool and head.
        x = self.preprocess(images)
        n = tf.shape(x)[0]
        if self.flip_tta:
            x = tf.concat([x, tf.reverse(x, axis=[2])], axis=0)
        conv = self.to_conv(x, training=False)
        with tf.GradientTape() as tape:
            tape.watch(conv)
            fmap = conv
            for layer in self.tail:
                fmap = layer(fmap)
            hidden = self.penultimate(fmap, training=False)
            # The class's logit, not its probability: a softmax near 1 has no gradient left.
            logits = tf.matmul(hidden, self.last_dense.kernel) + self.last_dense.bias
            probs = tf.nn.softmax(logits, axis=-1)
            if self.flip_tta:
                probs = (probs[:n] + probs[n:]) / 2.0
            chosen = tf.where(
                class_index < 0, tf.argmax(probs, axis=1, output_type=tf.int32), class_index
            )
            picked = tf.gather(logits[:n], chosen, axis=1, batch_dims=1)
        grads = tape.gradient(picked, conv)[:n]
        # Grad-CAM: each channel weighted by its mean gradient; only positive evidence.
        weights = tf.reduce_mean(grads, axis=[1, 2], keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * conv[:n], axis=-1))
        peak = tf.reduce_max(cam, axis=[1, 2], keepdims=True)
        return {
            HEATMAP_NAME: tf.math.divide_no_nan(cam, peak),
            CLASS_INPUT_NAME: chosen,
            OUTPUT_NAME: probs,
            UNKNOWN_SCORE_NAME: knn_distance(pooled(fmap[:n], self.pooling), self.bank, self.k),
        }
