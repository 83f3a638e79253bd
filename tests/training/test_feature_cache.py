from __future__ import annotations

import shutil
from pathlib import Path

from tests.training.conftest import fit_tiny
from training.demo_data import generate


def test_feature_cache_second_fit_runs_base_on_no_image(demo_dir: Path, tmp_path: Path) -> None:
    cold = fit_tiny(demo_dir, tmp_path, base_weights="hed")
    warm = fit_tiny(demo_dir, tmp_path, base_weights="hed")
    assert cold.images_through_base == 36  # 24 train + 12 valid
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
