"""Fixtures for the service tests: tiny real SavedModels exported by `training`, and apps.

The models are VGG16 with random weights at 32x32 (a few seconds to export), so the
tests exercise the real export contract and the real TensorFlow graph, not mocks.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from bench.support.harness import export_tiny
from service.app import create_app
from service.settings import Settings
from tests.conftest import encode
from training.imagenet import imagenet_class_index

SIZE = 32
LABELS = ["car", "truck"]


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """car_truck versions 1 and 2 (different weights), kept aside to be copied into tests."""
    store = tmp_path_factory.mktemp("store")
    export_tiny(store, "car_truck", LABELS, SIZE, seed=1)
    export_tiny(store, "car_truck", LABELS, SIZE, seed=2)
    return store


def publish_copy(store: Path, models_dir: Path, name: str, version: int, as_version: int) -> Path:
    """Copy a stored version in under a temporary name, then rename it (like training does)."""
    tmp = models_dir / name / f".tmp-copy-{as_version}"
    shutil.copytree(store / name / str(version), tmp)
    final = models_dir / name / str(as_version)
    tmp.rename(final)
    return final


@pytest.fixture(scope="session")
def models_dir(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared repository: car_truck v1 and a 1000-class vgg16_imagenet stand-in."""
    root = tmp_path_factory.mktemp("models")
    (root / "car_truck").mkdir()
    publish_copy(model_store, root, "car_truck", 1, 1)
    # Same labels and class index as `training export-imagenet`, at 32 px instead of 224.
    index = imagenet_class_index()
    export_tiny(
        root, "vgg16_imagenet", [name for _, name in index], SIZE, seed=3, class_index=index
    )
    # Things the repository must ignore.
    (root / "car_truck" / ".tmp-half-written").mkdir()
    (root / "car_truck" / "latest").mkdir()
    (root / "car_truck" / "notes.txt").write_text("not a version")
    return root


def make_settings(models_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "models_dir": models_dir,
        "poll_interval_s": 0,
        # Tests look at the repository right after start-up: load before serving.
        "load_in_background": False,
        "batch_sizes": "1,4",
        "max_batch_size": 4,
        "max_batch_delay_ms": 2,
        "max_images_per_request": 4,
        "max_request_bytes": 200_000,
        "max_image_pixels": 1_000_000,
        "decode_threads": 2,
        # Exact parity with the SavedModel called directly (1e-5) needs fp32; the bf16
        # path has its own tests with their own tolerance.
        "precision": "fp32",
        # Two models are served (car_truck, vgg16_imagenet): requests naming none go here.
        "default_model": "car_truck",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def client(models_dir: Path) -> Iterator[TestClient]:
    """One running app over the shared repository, for the read-mostly tests."""
    with TestClient(create_app(make_settings(models_dir))) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def png() -> bytes:
    rng = np.random.default_rng(7)
    return encode(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), "PNG")


@pytest.fixture(scope="session")
def jpeg() -> bytes:
    rng = np.random.default_rng(8)
    return encode(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "JPEG", quality=90)


@pytest.fixture
def fresh_dir(model_store: Path, tmp_path: Path) -> Path:
    """A private repository holding only car_truck version 1 (tests that change it)."""
    root = tmp_path / "models"
    (root / "car_truck").mkdir(parents=True)
    publish_copy(model_store, root, "car_truck", 1, 1)
    return root


def wait_for(condition: Callable[[], object], timeout_s: float = 60.0) -> bool:
    """Poll `condition` until it is true; False after `timeout_s` (generous: CI is shared)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def files(*images: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Multipart `file` fields for TestClient."""
    return [("file", (name, data, "application/octet-stream")) for name, data in images]
