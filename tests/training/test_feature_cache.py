from __future__ import annotations

import shutil
from pathlib import Path

from tests.training.conftest import TINY
from training.demo_data import generate
from training.fit import fit


def test_feature_cache_second_fit_runs_base_on_no_image(demo_dir: Path, tmp_path: Path) -> None:
    kw = {"base_weights": "hed", "cache_dir": str(tmp_path / "cache"), "progress": False, **TINY}
    cold = fit(demo_dir, "m", tmp_path / "models", **kw)
    warm = fit(demo_dir, "m", tmp_path / "models", **kw)
    assert cold.images_through_base == 36  # 24 train + 12 valid
    assert warm.images_through_base == 0
    assert warm.metadata["training"]["images_through_base"] == 0


def test_feature_cache_added_files_are_the_only_ones_computed(
    demo_copy: Path, tmp_path: Path
) -> None:
    kw = {"base_weights": "none", "cache_dir": str(tmp_path / "cache"), "progress": False, **TINY}
    fit(demo_copy, "m", tmp_path / "models", **kw)
    generate(tmp_path / "more", train=2, valid=0, size=32, seed=99)
    for kind in ("car", "truck"):
        for f in (tmp_path / "more" / "train" / kind).iterdir():
            shutil.copy(f, demo_copy / "train" / kind / f"new_{f.name}")
    # A renamed copy of a known picture has the same bytes, so it is a cache hit.
    shutil.copy(demo_copy / "train/car/car_00000.png", demo_copy / "train/car/renamed.png")
    again = fit(demo_copy, "m", tmp_path / "models", **kw)
    assert again.images_through_base == 4


def test_feature_cache_flip_augment_caches_mirrored_features(
    demo_dir: Path, tmp_path: Path
) -> None:
    kw = {"base_weights": "none", "cache_dir": str(tmp_path / "cache"), "progress": False, **TINY}
    cold = fit(demo_dir, "m", tmp_path / "models", flip_augment=True, **kw)
    warm = fit(demo_dir, "m", tmp_path / "models", flip_augment=True, **kw)
    assert cold.images_through_base == 24 * 2 + 12  # train twice (mirrored too), valid once
    assert warm.images_through_base == 0
    assert len(list((tmp_path / "cache").rglob("*.flip.npy"))) == 24
