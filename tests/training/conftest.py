"""Shared fixtures for the training tests: a tiny demo data set, one fitted model, and
models whose answers are known by hand."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from training.demo_data import generate
from training.fit import FitResult, fit

SIZE = 32
# fp32: the parity tests compare with exact tolerances; bf16 has its own tests.
TINY = {
    "image_size": SIZE,
    "epochs": 3,
    "batch_size": 16,
    "patience": 3,
    "precision": "fp32",
    "int8": "off",  # quantizing takes seconds; tests/training/test_quantize.py turns it on
}


def fit_tiny(data: Path, work: Path, name: str = "m", **overrides: Any) -> FitResult:
    """`fit` with the tiny settings and random base weights; models and cache under `work`."""
    kw: dict[str, Any] = {"base_weights": "none", "cache_dir": str(work / "c"), "progress": False}
    return fit(data, name, work / "models", **{**kw, **TINY, **overrides})


def export_rule_model(
    models_dir: Path,
    name: str,
    labels: list[str],
    kernel: Sequence[Sequence[float]],
    bias: Sequence[float],
    size: int = SIZE,
    **fields: Any,
) -> Path:
    """Publish a model with hand-set weights; the path of the new version.

    probabilities = softmax(mean RGB in [0, 1] @ kernel + bias), with `kernel` 3 x classes:
    on a flat-coloured picture its scores can be worked out by hand, so metrics and
    the quality gate are checked against known numbers. A zero kernel makes a
    constant model (`softmax(bias)` for every picture).
    """
    import keras

    from training.export import publish_classifier

    inputs = keras.Input(shape=(size, size, 3), dtype="uint8", name="images")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(len(labels), activation="softmax")
    model = keras.Model(inputs, dense(x))
    dense.set_weights([np.asarray(kernel, np.float32), np.asarray(bias, np.float32)])
    weights = {"kind": "none", "source": "hand-set rule model (tests)", "sha256": "rule"}
    draft = publish_classifier(model, models_dir, name, labels, size, weights, **fields)
    return draft.final_path


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`train/{car,truck}` 12 each, `valid/{car,truck}` 6 each, 32x32 PNGs. Do not modify."""
    out = tmp_path_factory.mktemp("demo") / "data"
    generate(out, train=12, valid=6, size=SIZE, seed=0)
    return out


@pytest.fixture
def demo_copy(demo_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the demo data that a test may change."""
    return Path(shutil.copytree(demo_dir, tmp_path / "data"))


@pytest.fixture(scope="session")
def fitted(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FitResult:
    """One model fitted with the offline hed weights: models/car_truck/1."""
    root = tmp_path_factory.mktemp("fitted")
    return fit(
        demo_dir,
        "car_truck",
        root / "models",
        base_weights="hed",
        cache_dir=str(root / "cache"),
        progress=False,
        **TINY,
    )


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keras cannot get the ImageNet weights (no cache, no network), as on this machine."""
    import keras

    def unreachable(fname: str, origin: str | None = None, **kwargs: object) -> str:
        raise Exception(f"URL fetch failure on {origin}: no network (test)")

    monkeypatch.setattr(keras.utils, "get_file", unreachable)
