"""The int8 artifact on the read side: when the loader runs it, falls back, or refuses."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import modelstore.runtime
from bench.support.harness import export_tiny
from modelstore.int8_artifact import INT8_BIN
from modelstore.loader import load_published
from modelstore.runtime import Precision, PrecisionUnavailableError, Runtime, configure_runtime
from tests.support.int8_models import SIZE, publish_int8_tiny
from training.cli import EXIT_BAD_INPUT, main
from training.demo_data import generate

VNNI = {"avx512f", "avx512_bf16", "avx512_vnni"}
AUTO_INT8 = Runtime("/CPU:0", Precision("auto", "fp32", "test", int8=True))
EXPLICIT_INT8 = Runtime("/CPU:0", Precision("int8", "int8", "test", int8=True))
FP32 = Runtime("/CPU:0", Precision("fp32", "fp32", "test"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("photos") / "data"
    generate(out, train=6, valid=4, size=SIZE, seed=0)
    return out


@pytest.fixture(scope="module")
def int8_store(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """car_truck/1 with a ready int8 artifact (kept aside; tests copy it)."""
    store = tmp_path_factory.mktemp("int8-store")
    publish_int8_tiny(store, photos)
    return store


@pytest.fixture
def version(int8_store: Path, tmp_path: Path) -> Path:
    """A private copy of the int8 version that a test may change."""
    return Path(shutil.copytree(int8_store / "car_truck" / "1", tmp_path / "car_truck" / "1"))


@pytest.fixture
def restore_runtime() -> Iterator[None]:
    yield
    configure_runtime("fp32")  # the process-wide precision back to what other tests expect


def test_int8_loader_answers_like_the_savedmodel(version: Path, photos: Path) -> None:
    from imaging import load_image

    int8 = load_published(version, AUTO_INT8)
    fp32 = load_published(version, FP32)
    assert (int8.precision, fp32.precision) == ("int8", "fp32")
    assert int8.signature_def == fp32.signature_def  # TF Serving metadata unchanged
    pictures = np.stack([load_image(p, SIZE) for p in sorted(photos.rglob("*.png"))[:8]])
    got, want = int8.predict(pictures), fp32.predict(pictures)
    assert got.shape == want.shape == (8, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)  # the softmax stayed fp32
    np.testing.assert_allclose(got, want, atol=0.05)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [(VNNI, "int8"), ({"avx512f", "avx512_bf16"}, "bf16"), ({"avx2"}, "fp32")],
)
def test_int8_auto_picks_int8_only_on_an_int8_cpu(
    version: Path,
    flags: set[str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    restore_runtime: None,
) -> None:
    monkeypatch.setattr(modelstore.runtime, "cpu_flags", lambda: flags)
    assert load_published(version, configure_runtime("auto")).precision == expected


def test_int8_explicit_on_a_version_without_artifact_is_an_error(tmp_path: Path) -> None:
    plain = export_tiny(tmp_path / "models", "plain", size=SIZE)
    with pytest.raises(PrecisionUnavailableError, match="no int8 artifact"):
        load_published(plain, EXPLICIT_INT8)
    assert load_published(plain, AUTO_INT8).precision == "fp32"  # auto falls back


def test_int8_explicit_on_a_version_without_artifact_exits_2_from_the_cli(
    tmp_path: Path,
    photos: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_runtime: None,
) -> None:
    monkeypatch.setattr(modelstore.runtime, "cpu_flags", lambda: VNNI)
    plain = export_tiny(tmp_path / "models", "plain", size=SIZE)
    args = ["evaluate", "--model", str(plain), "--data", str(photos / "valid"), "--quiet"]
    assert main([*args, "--precision", "int8"]) == EXIT_BAD_INPUT
    assert "cannot run in int8" in capsys.readouterr().err


def test_int8_loader_refuses_an_artifact_changed_since_export(version: Path) -> None:
    weights = version / INT8_BIN
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(PrecisionUnavailableError, match="sha256"):
        load_published(version, EXPLICIT_INT8)
    assert load_published(version, AUTO_INT8).precision == "fp32"  # auto: the SavedModel


def test_int8_loader_refuses_an_artifact_of_another_runtime_release(version: Path) -> None:
    meta_file = version / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta["int8"]["runtime_version"] = "2020.1.0"
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(PrecisionUnavailableError, match=r"2020\.1\.0"):
        load_published(version, EXPLICIT_INT8)
