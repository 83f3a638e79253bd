"""Head training on features streamed from the store: same head as in memory, no partial split."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest

import training.engine
from tests.training.conftest import fit_tiny
from training.epoch_progress import EpochProgress
from training.features.store import FeatureStore
from training.features.stream import (
    ArrayFeatures,
    MissingFeaturesError,
    StoredFeatures,
    StoreFeatures,
    channel_moments,
    epoch_order,
    feature_batches,
    training_source,
)
from training.fit import FitConfig, head_probabilities, train_head, train_head_on

SHAPE = (2, 2, 3)


def _separable(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features of two classes far apart, their labels, and the mirrored pictures' features."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.normal(size=(n, *SHAPE)) + 3.0 * y[:, None, None, None]).astype(np.float32)
    return x, y, x[:, :, ::-1, :].copy()


def _stored(root: Path, x: np.ndarray, flipped: np.ndarray | None) -> StoredFeatures:
    store = FeatureStore(root, {"weights": "test", "layer": "tiny"}, SHAPE)
    shas = [hashlib.sha256(f"picture {i}".encode()).hexdigest() for i in range(len(x))]
    for i, sha in enumerate(shas):
        store.put(sha, False, x[i])
        if flipped is not None:
            store.put(sha, True, flipped[i])
    paths = [root / f"{i}.png" for i in range(len(x))]
    return StoredFeatures(store, paths, shas, flip=flipped is not None)


def test_streamed_head_equals_in_memory_head_under_the_same_seed(tmp_path: Path) -> None:
    x, y, flipped = _separable(120)
    xv, yv, _ = _separable(40, seed=1)
    cfg = FitConfig(
        head="flatten",
        width=8,
        dropout=0.2,
        epochs=5,
        batch_size=16,
        learning_rate=0.01,
        label_smoothing=0.1,
    )
    # In memory, as train_head always did: the mirrored copies after the originals.
    in_memory, history = train_head(
        cfg, np.concatenate([x, flipped]), np.concatenate([y, y]), xv, yv, 2
    )
    train = training_source(_stored(tmp_path / "t", x, flipped), y, "also", memory_mb=0)
    valid = training_source(_stored(tmp_path / "v", xv, None), yv, "none", memory_mb=0)
    assert isinstance(train, StoreFeatures) and len(train) == 240  # streamed, flips included
    streamed, streamed_history = train_head_on(cfg, train, valid, 2)
    for a, b in zip(in_memory.get_weights(), streamed.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(history["val_loss"], streamed_history["val_loss"], rtol=1e-4)
    by_stream = head_probabilities(streamed, valid).argmax(axis=1)
    np.testing.assert_array_equal(head_probabilities(in_memory, xv).argmax(axis=1), by_stream)
    assert (by_stream == yv).mean() == 1.0


def test_training_source_reads_small_splits_into_memory_and_streams_large_ones(
    tmp_path: Path,
) -> None:
    x, y, flipped = _separable(30)
    stored = _stored(tmp_path, x, flipped)
    small = training_source(stored, y, "also", memory_mb=1)
    assert isinstance(small, ArrayFeatures)
    np.testing.assert_array_equal(small.x, np.concatenate([x, flipped]))
    mirrors = training_source(stored, y, "only", memory_mb=0)
    assert isinstance(mirrors, StoreFeatures)
    np.testing.assert_array_equal(mirrors.read(np.array([3, 0])), flipped[[3, 0]])


def test_missing_features_stop_training_naming_how_many_and_where(tmp_path: Path) -> None:
    x, y, flipped = _separable(20)
    stored = _stored(tmp_path / "store", x, flipped)
    for sha in stored.file_sha256[:3]:
        Path(stored.store.location(sha)).unlink()
    Path(stored.store.location(stored.file_sha256[5], True)).write_bytes(b"cut short")
    for memory_mb in (0, 1024):  # streamed or read into memory: never a partial split
        with pytest.raises(MissingFeaturesError) as caught:
            training_source(stored, y, "also", memory_mb=memory_mb)
        message = str(caught.value)
        assert "lacks 4 of the 40 features" in message
        assert "(1 of them mirror images)" in message
        assert str(tmp_path / "store") in message


def test_fit_stops_when_the_store_loses_features_after_extraction(
    demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extract = training.engine.LocalFeatureEngine.store_splits

    def then_lose_two(self: object, *args: object, **kwargs: object) -> object:
        splits = extract(self, *args, **kwargs)  # type: ignore[arg-type]
        train = splits["train"]
        for sha in train.file_sha256[:2]:
            Path(train.store.location(sha)).unlink()
        return splits

    monkeypatch.setattr(training.engine.LocalFeatureEngine, "store_splits", then_lose_two)
    with pytest.raises(MissingFeaturesError, match=r"lacks 2 of the \d+ features"):
        fit_tiny(demo_dir, tmp_path, feature_memory_mb=0)
    assert not (tmp_path / "models" / "m").exists() or not any(
        (tmp_path / "models" / "m").iterdir()
    )


def test_fit_streamed_publishes_the_in_memory_model(demo_dir: Path, tmp_path: Path) -> None:
    in_memory = fit_tiny(demo_dir, tmp_path)
    streamed = fit_tiny(demo_dir, tmp_path, feature_memory_mb=0)
    assert streamed.metrics["accuracy"] == in_memory.metrics["accuracy"]
    assert streamed.history["val_loss"] == pytest.approx(in_memory.history["val_loss"], rel=1e-4)
    assert streamed.metadata.training["hyperparameters"]["feature_memory_mb"] == 0
    assert streamed.images_through_base == 0  # the second run's features were all stored


def test_channel_moments_equal_the_whole_arrays_mean_and_variance() -> None:
    x = np.random.default_rng(0).normal(5.0, 3.0, size=(101, *SHAPE)).astype(np.float32)
    mean, var = channel_moments(ArrayFeatures(x, np.zeros(101, np.int64)), batch_size=16)
    flat = x.astype(np.float64).reshape(-1, SHAPE[-1])
    np.testing.assert_allclose(mean, flat.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(var, flat.var(axis=0), rtol=1e-10)


def test_epoch_order_is_a_seeded_permutation_new_every_epoch() -> None:
    first = epoch_order(1000, seed=7, epoch=0)
    assert sorted(first.tolist()) == list(range(1000))
    np.testing.assert_array_equal(first, epoch_order(1000, seed=7, epoch=0))
    assert not np.array_equal(first, epoch_order(1000, seed=7, epoch=1))
    assert not np.array_equal(first, epoch_order(1000, seed=8, epoch=0))


def test_feature_batches_cover_every_example_once_in_the_given_order() -> None:
    x, y, _ = _separable(10)
    order = epoch_order(10, 0, 0)
    got = list(feature_batches(ArrayFeatures(x, y), 4, order))
    assert [len(b) for b, _ in got] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b for b, _ in got]), x[order])
    np.testing.assert_array_equal(np.concatenate([lab for _, lab in got]), y[order])


def test_epoch_progress_appears_only_once_an_epoch_is_long() -> None:
    now = [0.0]
    out = io.StringIO()
    bar = EpochProgress(1000, 100, epochs=3, after_s=5.0, stream=out, clock=lambda: now[0])
    bar.on_epoch_begin(0)
    for step in range(10):  # a quick epoch: one second in all
        now[0] += 0.1
        bar.on_train_batch_end(step)
    bar.on_epoch_end(0)
    assert out.getvalue() == ""
    bar.on_epoch_begin(1)
    for step in range(10):  # a slow one: 2 s a batch
        now[0] += 2.0
        bar.on_train_batch_end(step)
    bar.on_epoch_end(1)
    lines = out.getvalue().splitlines()
    assert lines[0] == "epoch 2/3: 1000 to do"  # not a terminal: whole lines
    assert lines[1] == "epoch 2/3: 300/1000 (30%) 50.0/s, 6s elapsed, ETA 14s"
    assert lines[-1] == "epoch 2/3: done 1000/1000 in 20s (50.0/s)"


def test_missing_features_after_the_store_disk_filled_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from training.features.storage import Storage

    x, y, _ = _separable(6)
    stored = _stored(tmp_path / "store", x, None)
    Path(stored.store.location(stored.file_sha256[0])).unlink()

    def full(self: Storage, path: str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(Storage, "write_atomic", full)
    stored.store.put(stored.file_sha256[0], False, x[0])  # the write fails: caching stops
    with pytest.raises(MissingFeaturesError, match=r"lacks 1 of the 6 .* disk filled up"):
        training_source(stored, y, "none", memory_mb=0)
