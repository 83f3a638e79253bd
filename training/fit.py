"""Train a new head on cached frozen-VGG16 features and publish it as the next model version.

The story, top to bottom:
  data folders -> features (frozen base, once per picture, disk cache) -> head
  trained on the features (Adam, class weights, early stopping) -> metrics on the
  validation split -> quality gate -> export base + head as `models/NAME/<N>/`.

Programmatic use (stable; the service's tests make tiny models with it):

    from training.fit import fit
    result = fit("data", "car_truck", "models", image_size=32, base_weights="none", epochs=3,
                 cache_dir="/tmp/feature-cache", progress=False)
    result.version, result.path, result.metrics["accuracy"]

Command line: `python -m training fit --data DIR --name NAME` (see `--help`).
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from modelstore.layout import latest_version, reserve_version
from modelstore.metadata import InvalidModelError, ModelMetadata, read_metadata, write_metadata
from modelstore.runtime import PrecisionUnavailableError, Runtime, configure_runtime
from modelstore.unknown import unknown_signature_summary
from training.config import FitConfig
from training.data import content_hash, load_dataset
from training.defaults import resolve_auto
from training.engine import FeatureEngine, open_engine
from training.epoch_progress import EpochProgress
from training.export import new_metadata, write_savedmodel
from training.features.extractor import FeatureExtractor
from training.features.stream import (
    ArrayFeatures,
    FeatureBatches,
    StoredFeatures,
    channel_moments,
    epoch_order,
    feature_batches,
    training_source,
)
from training.fit_story import auto_settings_block, smoothing_note, stopping_line
from training.gate import check_gate
from training.model import (
    build_base,
    build_classifier,
    build_head,
    load_head,
    resolve_weights,
    save_head,
    truncate_base,
)
from training.quantize import export_int8, not_made
from training.reports.model_card import write_model_card
from training.reports.plots import (
    CONFUSION_MATRIX_FILE,
    LEARNING_CURVES_FILE,
    plot_confusion_matrix,
    plot_learning_curves,
)
from training.scores import classification_metrics
from training.unknown import ExtraSignatures, fit_unknown_scorer

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    version: int
    path: Path
    metrics: dict[str, Any]
    metadata: ModelMetadata
    model: keras.Model  # the in-process classifier that was exported
    history: dict[str, list[float]] = field(default_factory=dict)
    images_through_base: int = 0  # pictures the base computed (0 when all were cached)
    seconds: dict[str, float] = field(default_factory=dict)  # time per phase of the run


class EpochLines(keras.callbacks.Callback):
    """One whole line per epoch on stderr, with its seconds: `epoch 3/30 1.25s loss ...`.

    With label smoothing the losses Keras reports are the smoothed ones: they are
    named `loss (smoothed)` so that nobody compares them with the published log_loss.
    """

    def __init__(self, epochs: int, smoothed: bool = False) -> None:
        super().__init__()
        self.epochs = epochs
        self.smoothed = smoothed
        self._started = time.monotonic()

    def _name(self, key: str) -> str:
        return f"{key} (smoothed)" if self.smoothed and key in ("loss", "val_loss") else key

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        seconds = time.monotonic() - self._started  # includes the validation pass
        logs = logs or {}
        parts = " ".join(
            f"{self._name(k)} {v:.4f}" for k, v in logs.items() if k != "learning_rate"
        )
        line = f"epoch {epoch + 1}/{self.epochs} {seconds:.2f}s {parts}"
        print(line, file=sys.stderr, flush=True)


def _report_unreadable(feats: dict[str, StoredFeatures]) -> dict[str, Any]:
    """List the files no engine could read, once, and return metadata's record of them."""
    skipped = {str(p): msg for f in feats.values() for p, msg in f.errors.items()}
    if skipped:
        listing = "\n".join(f"  {p}: {msg}" for p, msg in sorted(skipped.items()))
        # Printed once for the person at the terminal; logged below warning level so the
        # CLI (whose log handler writes warnings to the same stderr) does not list it twice.
        log.info("skipped %d unreadable file(s):\n%s", len(skipped), listing)
        print(f"warning: skipped {len(skipped)} unreadable file(s):\n{listing}", file=sys.stderr)
    return {"count": len(skipped), "files": sorted(skipped)}


def class_weights(labels: Sequence[int] | np.ndarray, num_classes: int) -> dict[int, float]:
    """`n / (k * n_c)`: every class weighs the same in the loss, whatever its size."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes)
    return {c: float(len(labels) / (num_classes * counts[c])) for c in range(num_classes)}


# A warm-started head needs few epochs: it starts near its optimum. With label smoothing
# its validation loss keeps creeping down for 7 epochs, while its validation and test
# accuracy stayed those of the version it started from (bench/results/retrain.json).
WARM_EPOCHS = 3
# Its best epoch is almost always the first: a second one only confirms it (patience 2
# gave the same heads on real photos, one epoch later).
WARM_PATIENCE = 1
# ... and larger steps: a quarter of the optimizer steps per epoch, and of their overhead.
WARM_BATCH_SIZE = 128
# ... and smaller ones: a fresh Adam moves every weight by about the learning rate in its
# first steps, which throws a converged head off its optimum. 0.3x kept the cold head's
# validation accuracy on real photos (3 seeds: 0.904 vs 0.896 at 1x, 0.900 at 0.1x).
WARM_LEARNING_RATE_FACTOR = 0.3


def warm_schedule(cfg: FitConfig) -> dict[str, Any]:
    """Epochs, patience, batch size and learning rate of a warm-started head."""
    return {
        "max_epochs": min(cfg.epochs, WARM_EPOCHS),
        "patience": min(cfg.patience, WARM_PATIENCE),
        "batch_size": max(cfg.batch_size, WARM_BATCH_SIZE),
        "learning_rate": cfg.learning_rate * WARM_LEARNING_RATE_FACTOR,
    }


def train_head(
    cfg: FitConfig,
    x: np.ndarray,
    y: np.ndarray,
    xv: np.ndarray,
    yv: np.ndarray,
    n: int,
    start_from: keras.Model | None = None,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """`train_head_on` features already in memory (tests, benchmarks)."""
    return train_head_on(cfg, ArrayFeatures(x, y), ArrayFeatures(xv, yv), n, start_from)


def train_head_on(
    cfg: FitConfig,
    train: FeatureBatches,
    valid: FeatureBatches,
    n: int,
    start_from: keras.Model | None = None,
    progress: bool = False,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Fit a head on features read a batch at a time; early stopping restores the best
    validation loss.

    `train` is read in a new seeded order every epoch (`epoch_order`), from memory or
    streamed from the feature store: the same batches either way. `start_from`: a
    previous version's head (same labels and features) to continue from on
    `warm_schedule(cfg)` (few epochs, large batches, a smaller learning rate); its
    feature normalisation is kept, so its weights keep their meaning. Otherwise a
    fresh head, normalised by one pass over `train` (`channel_moments`). `callbacks`:
    more Keras callbacks for the epoch loop (the benchmark's clock).
    """
    keras.utils.set_random_seed(cfg.seed)
    epochs, patience, batch_size = cfg.epochs, cfg.patience, cfg.batch_size
    learning_rate = cfg.learning_rate
    if start_from is not None:
        head = start_from
        warm = warm_schedule(cfg)
        epochs, patience = warm["max_epochs"], warm["patience"]
        batch_size, learning_rate = warm["batch_size"], warm["learning_rate"]
    else:
        head = build_head(
            train.feature_shape,
            n,
            kind=cfg.head,
            width=int(cfg.width),
            dropout=cfg.dropout,
            moments=channel_moments(train),
        )
    # fit resolves "auto" from the weights; a bare head trained on features (benchmarks,
    # tests) with "auto" left in gets one-hot targets.
    smoothing = 0.0 if cfg.label_smoothing == "auto" else float(cfg.label_smoothing)
    loss: Any = "sparse_categorical_crossentropy"
    target_spec = tf.TensorSpec((None,), tf.int64)
    if smoothing:  # Keras smooths one-hot targets only
        print(smoothing_note(smoothing), file=sys.stderr)
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)
        target_spec = tf.TensorSpec((None, n), tf.float32)

    def targets(labels: np.ndarray) -> np.ndarray:
        return np.eye(n, dtype=np.float32)[labels] if smoothing else labels

    head.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=loss,
        metrics=["accuracy"],
        # Several small steps per call: on tiny feature batches the per-step Python
        # overhead, not the arithmetic, is what costs time.
        steps_per_execution=16,
    )
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True
    )
    weights = class_weights(train.labels, n)
    weight_of = np.asarray([weights[c] for c in range(n)], dtype=np.float32)
    epoch = itertools.count()  # tf.data calls the generator anew for every epoch

    def train_batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        order = epoch_order(len(train), cfg.seed, next(epoch))
        for xb, yb in feature_batches(train, batch_size, order):
            yield xb, targets(yb), weight_of[yb]

    def valid_batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for xb, yb in feature_batches(valid, 256):
            yield xb, targets(yb)

    features_spec = tf.TensorSpec((None, *train.feature_shape), tf.float32)
    weight_spec = tf.TensorSpec((None,), tf.float32)
    # prefetch: the next batches are read (from the store's files) while this one trains.
    # The number of batches, told: Keras then neither guesses the epoch's end nor warns.
    train_data = (
        tf.data.Dataset.from_generator(
            train_batches, output_signature=(features_spec, target_spec, weight_spec)
        )
        .apply(tf.data.experimental.assert_cardinality(-(-len(train) // batch_size)))
        .prefetch(2)
    )
    valid_data = (
        tf.data.Dataset.from_generator(valid_batches, output_signature=(features_spec, target_spec))
        .apply(tf.data.experimental.assert_cardinality(-(-len(valid) // 256)))
        .prefetch(2)
    )
    history = head.fit(
        train_data,
        validation_data=valid_data,
        epochs=epochs,
        shuffle=False,  # the batches come shuffled (seeded)
        verbose=0,
        callbacks=[
            stop,
            EpochLines(epochs, smoothed=smoothing > 0),
            EpochProgress(len(train), batch_size, epochs, enabled=progress),
            *callbacks,
        ],
    )
    record = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    print(stopping_line(record, epochs, patience), file=sys.stderr, flush=True)
    return head, record


def head_probabilities(
    head: keras.Model, x: np.ndarray | FeatureBatches, batch: int = 512
) -> np.ndarray:
    """The head's probabilities for feature rows `x` (an array, or examples read from the
    store), called directly in batches, in order.

    Not `Model.predict`: on a few hundred cached rows its data pipeline and the
    tracing of its predict step cost half a second per call, the call itself
    milliseconds (a retrain's whole budget is a few seconds).
    """
    source = ArrayFeatures(x, np.zeros(len(x), np.int64)) if isinstance(x, np.ndarray) else x
    parts = [np.asarray(head(xb, training=False)) for xb, _ in feature_batches(source, batch)]
    return np.concatenate(parts) if parts else np.zeros((0, head.output_shape[-1]), np.float32)


# Settings that change the head's input or shape: a previous head fits only if all match.
HEAD_SHAPING = ("base_layer", "image_size", "head", "width")


def warm_start_head(
    model_dir: Path, classes: list[str], weights_sha256: str, cfg: FitConfig
) -> tuple[keras.Model | None, dict[str, Any]]:
    """The latest version's head when its labels, base weights and head-shaping settings
    match this run's (else None), and a record of what was decided and why."""
    version = latest_version(model_dir)
    if version is None:
        return None, {"used": False, "reason": "no earlier version"}
    folder = model_dir / str(version)
    try:
        meta = read_metadata(folder)
    except InvalidModelError as exc:
        return None, {"used": False, "reason": f"version {version}: {exc}"}
    hyper = (meta.training or {}).get("hyperparameters", {})
    mismatch = [k for k in HEAD_SHAPING if hyper.get(k) != getattr(cfg, k)]
    if meta.labels != classes:
        mismatch.insert(0, "labels")
    if meta.base_weights.sha256 != weights_sha256:
        mismatch.insert(0, "base weights")
    if mismatch:
        return None, {"used": False, "reason": f"version {version} differs: {', '.join(mismatch)}"}
    head = load_head(folder)
    if head is None:
        return None, {"used": False, "reason": f"version {version} has no readable head"}
    log.info("warm start from %s version %d", model_dir.name, version)
    return head, {"used": True, "from_version": version}


def driver_runtime(requested: str, engine: FeatureEngine) -> Runtime:
    """This process's runtime (devices, precision), set before any model is built.

    When the engine runs the base elsewhere (ray), a precision only the workers can
    run (fp16 on GPU workers, asked from a CPU driver) leaves this process, which then
    only trains the head, in fp32: exact, and the head is too small for speed to matter.
    """
    try:
        return configure_runtime(requested)
    except PrecisionUnavailableError as exc:
        if engine.name == "local":
            raise
        log.warning(
            "--precision %s cannot run on this driver (%s): it trains the head in fp32; "
            "the %s workers run the base",
            requested,
            exc,
            engine.name,
        )
        return configure_runtime("fp32")


def fit(
    data_dir: str | Path,
    name: str,
    models_dir: str | Path = "models",
    config: FitConfig | None = None,
    progress: bool = True,
    **overrides: Any,
) -> FitResult:
    """Train and publish the next version of `name`; returns version, path, metrics, metadata.

    Settings come from `config` (a FitConfig) and/or keyword `overrides` of its
    fields, e.g. `fit(d, "m", tmp, image_size=32, base_weights="none", epochs=3)`.
    Raises DataError (bad data folder), WeightsUnavailableError, GateFailedError
    (nothing published), pydantic.ValidationError (a setting out of its range).
    """
    cfg = (config or FitConfig()).replace(**overrides)  # validated: a bad value fails here
    started = time.monotonic()
    # Ray connects here: an unreachable cluster fails before any data or weights are loaded.
    engine = open_engine(
        cfg.engine, cfg.ray_address, cfg.ray_actors, cfg.feature_batch_size, progress
    )
    data = load_dataset(Path(data_dir), cfg.valid_split, cfg.seed)
    runtime = driver_runtime(cfg.precision, engine)
    # What the base computes the features in, on the hardware where the engine runs it (ray:
    # resolved on a worker; an explicit precision the workers cannot run fails here).
    precision = engine.feature_precision(cfg.precision, runtime.precision)
    # "auto" settings follow the weights the base really gets (auto -> imagenet or hed).
    resolved = resolve_weights(cfg.base_weights)
    cfg, auto_settings = resolve_auto(cfg, resolved[0])
    print(auto_settings_block(resolved[0], auto_settings), file=sys.stderr, flush=True)
    size = int(cfg.image_size)
    full_base, weights = build_base(cfg.base_weights, size, seed=cfg.seed, resolved=resolved)
    base = truncate_base(full_base, cfg.base_layer)
    extractor = FeatureExtractor(
        base,
        weights,
        size,
        Path(cfg.cache_dir) if cfg.cache_dir else None,
        batch_size=cfg.feature_batch_size,
        progress=progress,
        layer=cfg.base_layer,
        precision=precision.effective,
    )
    flip_augment, flip_tta = bool(cfg.flip_augment), bool(cfg.flip_tta)
    splits = {
        "train": (data.train.paths, flip_augment),
        "valid": (data.valid.paths, flip_tta),  # scored as the export will score them
    }
    # The features stay in the store (either engine's workers wrote them there); the head
    # reads them back in batches, so no split is ever gathered whole (features.stream).
    feats = engine.store_splits(extractor, splits)
    seconds = {"features": time.monotonic() - started}
    skipped = _report_unreadable(feats)
    data = data.without({Path(p) for p in skipped["files"]})
    yv = np.asarray(data.valid.labels)
    memory = cfg.feature_memory_mb
    train = training_source(
        feats["train"], data.train.labels, "also" if flip_augment else "none", memory
    )
    valid = training_source(feats["valid"], yv, "none", memory)
    warm, warm_record = (
        warm_start_head(Path(models_dir) / name, data.classes, weights.sha256, cfg)
        if cfg.warm_start
        else (None, {"used": False, "reason": "off"})
    )
    head, history = train_head_on(
        cfg, train, valid, len(data.classes), start_from=warm, progress=progress
    )
    if warm is not None:
        warm_record["schedule"] = warm_schedule(cfg)
    probs = head_probabilities(head, valid)
    if flip_tta:
        mirrored = training_source(feats["valid"], yv, "only", memory)
        probs = (probs + head_probabilities(head, mirrored)) / 2
    metrics = classification_metrics(yv, probs, data.classes)
    seconds["head"] = time.monotonic() - started - seconds["features"]

    classifier = build_classifier(base, head, size, flip_tta=flip_tta)
    # The unknown score: a bank of the training photos' cut features (cached already),
    # its threshold calibrated on the validation photos as the export scores them.
    # Read from the store in batches, as the head was (with the mirrors when augmented).
    scorer = fit_unknown_scorer(train, valid, cfg.unknown_rate)
    extra = ExtraSignatures(base, head, size, flip_tta, scorer)
    # The epoch EarlyStopping restored (1-based; 0 when there was no validation loss).
    best_epoch = int(np.argmin(history["val_loss"])) + 1 if history.get("val_loss") else 0
    hashes = [
        (data.classes[label], sha)
        for split, f in ((data.train, feats["train"]), (data.valid, feats["valid"]))
        for label, sha in zip(split.labels, f.file_sha256, strict=True)
    ]
    record = {
        "data_dir": str(Path(data_dir).resolve()),
        "class_counts": {
            "train": data.train.counts(data.classes),
            "valid": data.valid.counts(data.classes),
        },
        "data_sha256": content_hash(hashes),
        "skipped_files": skipped,
        "hyperparameters": cfg.model_dump(),  # with every "auto" resolved
        "auto_settings": auto_settings,  # which values "auto" chose, and why
        "warm_start": warm_record,
        "seed": cfg.seed,
        "epochs_run": len(history.get("loss", [])),
        "best_epoch": best_epoch,
        "images_through_base": extractor.images_through_base,
        "precision": precision.to_dict(),
        "device": runtime.device,
        "engine": engine.describe(),  # local, or ray with the nodes that did the work
    }

    # Publishing holds the model's lock from the gate to the rename: "better than the
    # latest" still holds when this version appears, and an exception publishes nothing.
    with reserve_version(Path(models_dir), name) as draft:
        gate_report = check_gate(
            metrics["accuracy"],
            cfg.min_accuracy,
            cfg.promote_if_better,
            Path(models_dir) / name,
            data.valid.paths,
            [data.classes[i] for i in data.valid.labels],
        )
        split = write_savedmodel(classifier, draft.path, size, extra=extra)  # + head/
        int8 = (
            export_int8(
                draft.path, data.train.paths, data.valid.paths, data.valid.labels, size, cfg.seed
            )
            if cfg.int8 == "auto"
            else not_made("turned off (--int8 off)")
        )
        save_head(head, draft.path)  # the next version can warm-start from it
        title = f"{name} version {draft.version}"
        plot_learning_curves(history, draft.path / LEARNING_CURVES_FILE, title, best_epoch or None)
        plot_confusion_matrix(
            metrics["confusion_matrix"], data.classes, draft.path / CONFUSION_MATRIX_FILE, title
        )
        # From fit's start to here: the export, the head and the plots included.
        record["seconds"] = round(time.monotonic() - started, 2)
        metadata = new_metadata(
            draft,
            data.classes,
            size,
            weights.to_dict(),
            training=record,
            metrics={"validation": metrics},
            precision=precision.effective,
            history=history,
            gate=gate_report,
            int8=int8,
            **split,
            unknown=scorer.record(),
        )
        metadata.signatures.update(unknown_signature_summary(size, len(data.classes)))
        write_model_card(draft.path, metadata)  # inside the draft: atomic with the version
        write_metadata(draft.path, metadata)
    version, path = draft.version, draft.final_path
    seconds["total"] = time.monotonic() - started
    seconds["export"] = seconds["total"] - seconds["features"] - seconds["head"]
    seconds["int8"] = int8.seconds or 0.0  # part of the export
    return FitResult(
        version,
        path,
        metrics,
        metadata,
        classifier,
        history,
        extractor.images_through_base,
        {k: round(v, 2) for k, v in seconds.items()},
    )
