from __future__ import annotations

import shutil
from pathlib import Path

import keras
import numpy as np
import PIL
import pytest

import imaging.decode
import training.features.extractor
from imaging.decode import DECODE_VERSION
from tests.training.conftest import fit_tiny
from training.demo_data import generate
from training.features.extractor import FeatureExtractor
from training.model import BaseWeights, build_base


def test_feature_cache_second_fit_runs_base_on_no_image(demo_dir: Path, tmp_path: Path) -> None:
    cold = fit_tiny(demo_dir, tmp_path, base_weights="hed")
    warm = fit_tiny(demo_dir, tmp_path, base_weights="hed")
    # hed's auto settings mirror every picture: train for flip augmentation, valid for
    # flip test-time augmentation, so (24 train + 12 valid) x 2.
    assert cold.images_through_base == 72
    assert warm.images_through_base == 0
    assert warm.metadata.training["images_through_base"] == 0


def test_feature_cache_added_files_are_the_only_ones_computed(
    demo_copy: Path, tmp_path: Path
) -> None:
    fit_tiny(demo_copy, tmp_path)
    generate(tmp_path / "more", train=2, valid=0, size=32, seed=99)
    for kind in ("car", "truck"):
        for f in (tmp_path / "more" / "train" / kind).iterdir():
            shutil.copy(f, demo_copy / "train" / kind / f"new_{f.name}")
    # A renamed copy of a known picture has the same bytes, so it is a cache hit.
    shutil.copy(demo_copy / "train/car/car_00000.png", demo_copy / "train/car/renamed.png")
    again = fit_tiny(demo_copy, tmp_path)
    assert again.images_through_base == 4


def test_feature_cache_flip_augment_caches_mirrored_features(
    demo_dir: Path, tmp_path: Path
) -> None:
    cold = fit_tiny(demo_dir, tmp_path, flip_augment=True)
    warm = fit_tiny(demo_dir, tmp_path, flip_augment=True)
    assert cold.images_through_base == 24 * 2 + 12  # train twice (mirrored too), valid once
    assert warm.images_through_base == 0
    assert len(list((tmp_path / "c").rglob("*.flip.npy"))) == 24


def _count_through_base(
    base: keras.Model, info: BaseWeights, size: int, cache: Path, paths: list[Path]
) -> tuple[int, np.ndarray]:
    """A fresh extractor over `cache`: how many pictures went through the base, and the values."""
    extractor = FeatureExtractor(base, info, size, cache, progress=False)
    values = extractor.extract(paths).values
    return extractor.images_through_base, values


def test_feature_cache_misses_on_new_weights_size_or_decoder(
    demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = sorted((demo_dir / "valid" / "car").iterdir())[:3]
    cache = tmp_path / "c"

    def through_base(base: keras.Model, info: BaseWeights, size: int = 32) -> int:
        return _count_through_base(base, info, size, cache, paths)[0]

    base, info = build_base("none", 32, seed=0)
    assert through_base(base, info) == 3
    assert through_base(base, info) == 0  # same weights, size and decoding: all hits
    # Other weights: random ones keyed by their values (not the record's seed), files by hash.
    other_values, _ = build_base("none", 32, seed=1)
    assert through_base(other_values, info) == 3
    file_a = BaseWeights("file", "a.h5", "a" * 64)
    assert through_base(base, file_a) == 3
    assert through_base(base, file_a) == 0
    assert through_base(base, BaseWeights("file", "b.h5", "b" * 64)) == 3
    # Another input size (the same seed 0 weights); both sizes are kept side by side.
    assert through_base(*build_base("none", 64, seed=0), size=64) == 3
    assert through_base(base, info) == 0
    # A new decoder (its version is bumped when load_image's pixels change), or a new Pillow.
    monkeypatch.setattr(imaging.decode, "DECODE_VERSION", DECODE_VERSION + 1)
    monkeypatch.setattr(
        training.features.extractor, "DECODE_VERSION", DECODE_VERSION + 1, raising=False
    )
    assert through_base(base, info) == 3
    assert through_base(base, info) == 0
    monkeypatch.setattr(PIL, "__version__", f"{PIL.__version__}.post-test")
    assert through_base(base, info) == 3


def test_feature_cache_corrupt_entries_are_recomputed(demo_dir: Path, tmp_path: Path) -> None:
    paths = sorted((demo_dir / "valid" / "truck").iterdir())[:3]
    base, info = build_base("none", 32, seed=0)
    count, first = _count_through_base(base, info, 32, tmp_path, paths)
    assert count == 3
    entries = sorted(tmp_path.rglob("*.npy"))
    assert len(entries) == 3
    entries[0].write_bytes(b"not an array")
    entries[1].write_bytes(entries[1].read_bytes()[:60])  # truncated by a full disk
    with open(entries[2], "wb") as fh:
        np.save(fh, np.zeros((2, 2), np.float32))  # another shape (a foreign file)
    count, again = _count_through_base(base, info, 32, tmp_path, paths)
    assert count == 3
    np.testing.assert_allclose(again, first, rtol=1e-5, atol=1e-6)
    # The recomputed entries were written back: now they are hits.
    count, _ = _count_through_base(base, info, 32, tmp_path, paths)
    assert count == 0
