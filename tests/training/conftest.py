"""Shared fixtures for the training tests: a tiny demo data set and one fitted model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from training.demo_data import generate
from training.fit import FitResult, fit

SIZE = 32
# fp32: the parity tests compare with exact tolerances; bf16 has its own tests.
TINY = {"image_size": SIZE, "epochs": 3, "batch_size": 16, "patience": 3, "precision": "fp32"}


def fit_tiny(data: Path, work: Path, name: str = "m", **overrides: Any) -> FitResult:
    """`fit` with the tiny settings and random base weights; models and cache under `work`."""
    kw: dict[str, Any] = {"base_weights": "none", "cache_dir": str(work / "c"), "progress": False}
    return fit(data, name, work / "models", **{**kw, **TINY, **overrides})


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
