"""int8 at export: the artifact is written and recorded, or omitted with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import training.quantize
from modelstore.int8_artifact import INT8_BIN, INT8_XML, file_sha256, load_int8, runtime_version
from modelstore.loader import load_published
from modelstore.runtime import Precision, PrecisionUnavailableError, Runtime
from tests.training.conftest import fit_tiny
from training.fit import FitResult
from training.quantize import MAX_CALIBRATION_PHOTOS, calibration_sample


@pytest.fixture(scope="module")
def int8_fit(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FitResult:
    """A fit that keeps its int8 artifact. Its base has random weights, so its answers sit
    near 50/50 and int8 may flip one of the 12 validation photos: the guard is waived
    here (its refusal is tested below with the real thresholds)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training.quantize, "MIN_AGREEMENT", 0.0)
        patch.setattr(training.quantize, "MAX_ACCURACY_DROP", 1.0)
        return fit_tiny(demo_dir, tmp_path_factory.mktemp("int8-fit"), int8="auto")


def test_quantize_fit_writes_and_records_the_int8_artifact(int8_fit: FitResult) -> None:
    meta = json.loads((int8_fit.path / "metadata.json").read_text())
    record = meta["int8"]
    assert record["status"] == "ready", record
    assert record["runtime"] == "openvino" and record["runtime_version"] == runtime_version()
    for name in (INT8_XML, INT8_BIN):
        assert record["files"][name] == file_sha256(int8_fit.path / name)
    assert record["calibration"]["photos"] == 24  # all 24 training photos (<= 300)
    check = record["accuracy_check"]
    assert check["photos"] == 12 and check["passed"] is True
    assert 0.0 <= check["top1_agreement"] <= 1.0 and check["min_agreement"] == 0.0
    assert (int8_fit.path / "saved_model.pb").is_file()  # the fp32 export stays


def test_quantize_int8_artifact_runs_with_probabilities_that_sum_to_one(
    int8_fit: FitResult,
) -> None:
    model = load_int8(int8_fit.path)
    pictures = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), np.uint8)
    probs = model(pictures)
    assert probs.shape == (5, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # A fitted version also carries the unknown scorer, which the artifact lacks: an
    # explicit int8 refuses it, with the reason.
    runtime = Runtime("/CPU:0", Precision("int8", "int8", "test", int8=True))
    with pytest.raises(PrecisionUnavailableError, match="unknown scorer"):
        load_published(int8_fit.path, runtime)


def test_quantize_failed_guard_publishes_without_int8_and_says_why(
    demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(training.quantize, "MIN_AGREEMENT", 1.01)  # cannot be met
    result = fit_tiny(demo_dir, tmp_path, int8="auto")
    record = result.metadata.int8
    assert record is not None and record.status == "omitted"
    assert "accuracy check failed" in record.reason and "needs >= 101%" in record.reason
    assert record.accuracy_check is not None and record.accuracy_check["passed"] is False
    assert not (result.path / "int8").exists()


def test_quantize_off_records_that_it_was_turned_off(fitted: FitResult) -> None:
    record = fitted.metadata.int8  # the shared fixture fits with int8="off"
    assert record is not None and record.status == "omitted" and "off" in record.reason
    assert not (fitted.path / "int8").exists()


def test_quantize_calibration_sample_is_bounded_and_repeatable() -> None:
    paths = [Path(f"p{i}.png") for i in range(1000)]
    sample = calibration_sample(paths, seed=3)
    assert len(sample) == MAX_CALIBRATION_PHOTOS == len(set(sample))
    assert sample == calibration_sample(paths, seed=3)
    assert sample != calibration_sample(paths, seed=4)
    assert calibration_sample(paths[:10], seed=3) == paths[:10]
