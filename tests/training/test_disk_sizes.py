"""What a version and the feature cache cost on disk, checked on a real (tiny) export.

The documentation's sizes follow these rules: a published head holds its weights
and no optimizer state (4 bytes per parameter), and the feature cache holds 4
bytes per feature value per picture, once more for the mirror image when flips
are on.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import h5py
import numpy as np

from training.fit import FitResult
from training.model import HEAD_FILE, load_head

NPY_HEADER_MAX = 128  # numpy's .npy header for a small float32 array


def _h5_names(data: bytes) -> list[str]:
    names: list[str] = []
    with h5py.File(io.BytesIO(data), "r") as h5:
        h5.visit(names.append)
    return names


def test_published_head_has_no_optimizer_state(fitted: FitResult) -> None:
    path = fitted.path / HEAD_FILE
    with zipfile.ZipFile(path) as archive:
        names = _h5_names(archive.read("model.weights.h5"))
    assert names and not [n for n in names if "optimizer" in n], names
    head = fitted.model.get_layer("head")
    # Adam's two moments per weight would triple it; weights alone: 4 bytes a parameter.
    weight_bytes = 4 * head.count_params()
    assert weight_bytes <= path.stat().st_size < 1.1 * weight_bytes + 64 * 1024
    # ... and a warm start still reads it: same weights, same answers.
    loaded = load_head(fitted.path)
    assert loaded is not None
    features = np.random.default_rng(0).normal(size=(3, *head.input_shape[1:])).astype("float32")
    np.testing.assert_allclose(loaded(features), head(features), atol=1e-6)


def test_savedmodel_variables_are_the_base_and_head_weights(fitted: FitResult) -> None:
    variables = sum(f.stat().st_size for f in (fitted.path / "variables").iterdir())
    weight_bytes = 4 * fitted.model.count_params()  # base up to the cut + head, fp32
    assert weight_bytes <= variables < 1.05 * weight_bytes + 64 * 1024


def test_feature_cache_costs_4_bytes_per_value_per_view(fitted: FitResult) -> None:
    cache = Path(fitted.metadata.training["hyperparameters"]["cache_dir"])  # type: ignore[index]
    files = list(cache.rglob("*.npy"))
    head = fitted.model.get_layer("head")
    values = int(np.prod(head.input_shape[1:]))  # e.g. 2 x 2 x 512 at 32 px, block4_pool
    assert files and all(
        4 * values < f.stat().st_size <= 4 * values + NPY_HEADER_MAX for f in files
    )
    # flip_augment and flip_tta on (hed): every picture is cached twice, as it is and mirrored.
    assert len([f for f in files if f.name.endswith(".flip.npy")]) * 2 == len(files)
