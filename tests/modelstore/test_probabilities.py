"""Probabilities are a distribution in every precision: bf16 rows sum to 1 within 1e-6."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.support.harness import export_tiny
from modelstore.loader import load_published, renormalised
from modelstore.runtime import configure_runtime, cpu_flags

needs_bf16 = pytest.mark.skipif(
    not ({"amx_bf16", "avx512_bf16"} & cpu_flags()), reason="this CPU has no bf16 units"
)


@pytest.fixture
def back_to_fp32() -> Iterator[None]:
    """The precision is process-wide: leave it as the other tests expect."""
    yield
    configure_runtime("fp32")


def test_renormalised_rows_sum_to_one() -> None:
    rows = np.array([[0.499, 0.499], [0.7, 0.302], [0.0, 0.0]], dtype=np.float32)
    out = renormalised(rows)
    assert out.dtype == np.float32
    assert np.abs(out[:2].sum(axis=1) - 1.0).max() <= 1e-6
    assert (out[2] == 0).all()  # nothing to scale: left alone, not NaN


@needs_bf16
def test_bf16_probabilities_sum_to_one(tmp_path: Path, back_to_fp32: None) -> None:
    labels = [f"class{i}" for i in range(10)]
    path = export_tiny(tmp_path, "tiny", labels, 32, seed=5)
    model = load_published(path, configure_runtime("bf16"))
    assert model.precision == "bf16"
    pictures = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    probabilities = model.predict(pictures)
    assert probabilities.dtype == np.float32
    assert np.abs(probabilities.sum(axis=1, dtype=np.float64) - 1.0).max() <= 1e-6
