"""Feature batches read from the feature store, so head training never holds a whole split.

The engines leave every feature where they wrote it (`training.features.store`),
one `.npy` file per picture (and per mirrored picture), and hand fit a
`StoredFeatures`: the readable files' hashes, no features. Head training reads
them back a batch at a time through one `FeatureBatches` interface:

    source = StoreFeatures(stored.store, stored.file_sha256, labels, views=(False, True))
    source.check()                                     # every file there, or an error
    for x, y in feature_batches(source, 32, epoch_order(len(source), seed, epoch)):
        ...                                            # x: [32, *feature_shape] float32

Why a permutation of example numbers and not a shuffle buffer of features: the
store is addressed by key, so reading the examples in any order costs the same,
and a permutation shuffles the whole split exactly, as in-memory training did,
for 8 bytes per example instead of a buffer of features. What stays in memory
per picture is its 32-byte key, its label and its place in the permutation;
the features of a few batches at a time (the reading threads, tf.data's prefetch).

`ArrayFeatures` is the same interface over arrays already in memory (tests,
benchmarks, callers that extracted features themselves): both train the same
head on the same batches. `feature_batches` is the reusable piece: anything that
needs a pass over a split's features (fit's normalisation statistics, scores on
the validation split, a scorer fitted on the training features) iterates it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from training.features.store import FeatureStore

# Store files read at once while a batch is assembled: reads wait on the disk (or on
# object storage) and release the GIL, so a few threads keep the trainer fed.
READ_THREADS = 4


class MissingFeaturesError(RuntimeError):
    """The store lacks features the engine reported as written: training on the rest would
    silently train on a partial split, so fit stops instead."""


@dataclass
class StoredFeatures:
    """A split's readable files whose features are in the store (not loaded), in input
    order, and the files that could not be read."""

    store: FeatureStore
    paths: list[Path]
    file_sha256: list[str]
    flip: bool  # the mirrored pictures' features are stored too
    errors: dict[Path, str] = field(default_factory=dict)


class FeatureBatches(Protocol):
    """Examples (a feature array and a label each), read by example number."""

    feature_shape: tuple[int, ...]

    def __len__(self) -> int: ...

    @property
    def labels(self) -> np.ndarray:
        """Every example's label, in example order (ints)."""
        ...

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The features of examples `rows`, in that order: `[len(rows), *feature_shape]`."""
        ...


class ArrayFeatures:
    """Examples held in memory: `x[i]` with label `y[i]`."""

    def __init__(self, x: np.ndarray, y: Sequence[int] | np.ndarray) -> None:
        self.x = np.asarray(x)
        self._labels = np.asarray(y, dtype=np.int64)
        if len(self.x) != len(self._labels):
            raise ValueError(f"{len(self.x)} feature rows for {len(self._labels)} labels")
        self.feature_shape = tuple(int(d) for d in self.x.shape[1:])

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def read(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.x[rows], dtype=np.float32)


def hex_keys(shas: Sequence[str]) -> np.ndarray:
    """sha256 hex strings -> `[n, 32]` uint8: a quarter of the memory of Python strings."""
    keys = np.empty((len(shas), 32), dtype=np.uint8)
    for i, sha in enumerate(shas):
        keys[i] = np.frombuffer(bytes.fromhex(sha), dtype=np.uint8)
    return keys


class StoreFeatures:
    """Examples read from the feature store: picture `i % n` in view `views[i // n]`.

    `views` lists which features of each picture are examples: `(False,)` the
    pictures, `(True,)` their mirror images, `(False, True)` both (flip
    augmentation: the mirrored copies come after the originals, as in memory).
    """

    def __init__(
        self,
        store: FeatureStore,
        shas: Sequence[str],
        labels: Sequence[int] | np.ndarray,
        views: tuple[bool, ...] = (False,),
    ) -> None:
        if len(shas) != len(labels):
            raise ValueError(f"{len(shas)} stored pictures for {len(labels)} labels")
        self.store = store
        self.keys = hex_keys(shas)
        self.views = views
        self.feature_shape = store.feature_shape
        picture_labels = np.asarray(labels, dtype=np.int64)
        self._labels = np.concatenate([picture_labels] * len(views))
        self._pool: ThreadPoolExecutor | None = None

    def __len__(self) -> int:
        return len(self.keys) * len(self.views)

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def _location(self, row: int) -> tuple[str, bool]:
        picture, view = row % len(self.keys), row // len(self.keys)
        return self.keys[picture].tobytes().hex(), self.views[view]

    def _read_one(self, row: int) -> np.ndarray:
        sha, flipped = self._location(row)
        value = self.store.get(sha, flipped)
        if value is None:  # deleted or damaged since `check()`
            raise MissingFeaturesError(
                f"the feature store lost features while training read them: "
                f"{self.store.location(sha, flipped)} is missing or damaged"
            )
        return value

    def read(self, rows: np.ndarray) -> np.ndarray:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="feature-read")
        out = np.empty((len(rows), *self.feature_shape), dtype=np.float32)
        for i, value in enumerate(self._pool.map(self._read_one, (int(r) for r in rows))):
            out[i] = value
        return out

    def check(self) -> None:
        """Raise MissingFeaturesError naming how many features are missing and where,
        unless every example's file is in the store with the size of a whole entry.

        Sizes only (one `stat` per file, not a read): a whole pass would double the
        reading of a large split; a file damaged in place still fails its read later.
        """
        expected = self.store.entry_size()
        missing: list[str] = []
        for row in range(len(self)):
            sha, flipped = self._location(row)
            where = self.store.location(sha, flipped)
            if self.store.storage.size(where) != expected:
                missing.append(where)
        if missing:
            mirrored = sum(w.endswith(".flip.npy") for w in missing)
            which = f" ({mirrored} of them mirror images)" if mirrored else ""
            why = (
                "its disk filled up while they were computed, and the head trains from the "
                "store: free space there or point --cache-dir at a larger disk"
                if self.store.full
                else "were they deleted or written to another store? Run fit again to "
                "recompute them"
            )
            raise MissingFeaturesError(
                f"the feature store {self.store.root} lacks {len(missing)} of the {len(self)} "
                f"features of this split{which}, e.g. {missing[0]}; {why}"
            )


def store_features(
    stored: StoredFeatures, labels: Sequence[int] | np.ndarray, mirrors: str = "none"
) -> StoreFeatures:
    """A split's stored features as examples: `mirrors` is "none", "also" (flip
    augmentation: each picture and its mirror image) or "only" (the mirror images)."""
    views = {"none": (False,), "also": (False, True), "only": (True,)}[mirrors]
    if mirrors != "none" and not stored.flip:
        raise ValueError("the mirrored features of this split were not computed")
    return StoreFeatures(stored.store, stored.file_sha256, labels, views)


def training_source(
    stored: StoredFeatures,
    labels: Sequence[int] | np.ndarray,
    mirrors: str = "none",
    memory_mb: float = 0,
) -> FeatureBatches:
    """A split's examples for head training, checked complete (MissingFeaturesError
    otherwise): streamed from the store, or read into memory once when their features
    take at most `memory_mb` MiB (0: always streamed)."""
    source = store_features(stored, labels, mirrors)
    source.check()
    size = len(source) * 4 * int(np.prod(source.feature_shape))
    if size and size <= memory_mb * 2**20:
        return ArrayFeatures(source.read(np.arange(len(source))), source.labels)
    return source


def epoch_order(count: int, seed: int, epoch: int) -> np.ndarray:
    """Epoch `epoch`'s shuffled example numbers: the same for the same seed and epoch."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def feature_batches(
    source: FeatureBatches, batch_size: int, order: np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`(features, labels)` batches of `source`, in example order or in `order`."""
    rows = np.arange(len(source)) if order is None else order
    labels = source.labels
    for start in range(0, len(rows), batch_size):
        chosen = rows[start : start + batch_size]
        yield source.read(chosen), labels[chosen]


def channel_moments(
    source: FeatureBatches, batch_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each channel (last axis) over every example, in one pass.

    Batch statistics merged with Chan et al.'s parallel formula in float64: the
    result is the whole array's `mean(axis)` and `var(axis)` to float64 rounding.
    """
    channels = source.feature_shape[-1]
    count, mean, m2 = 0, np.zeros(channels), np.zeros(channels)
    for x, _ in feature_batches(source, batch_size):
        flat = np.asarray(x, dtype=np.float64).reshape(-1, channels)
        n, batch_mean = len(flat), flat.mean(axis=0)
        batch_m2 = ((flat - batch_mean) ** 2).sum(axis=0)
        delta, total = batch_mean - mean, count + n
        mean = mean + delta * (n / total)
        m2 = m2 + batch_m2 + delta**2 * (count * n / total)
        count = total
    if count == 0:
        raise ValueError("no features to take the mean and variance of")
    return mean, m2 / count
