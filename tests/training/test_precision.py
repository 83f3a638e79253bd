"""bf16 against fp32 on a real pretrained (hed) model: same answers within a documented tolerance.

Tolerance (docs/benchmarks.md, "Precision: same answers in bf16"): top-1 identical on
every image, probabilities within 0.03 of fp32 (measured on real photos by
bench/precision_accuracy.py: at most 0.026, top-1 agreement 99.5-100 %); here on the
demo data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelstore.loader import load_published
from modelstore.runtime import configure_runtime, cpu_flags
from tests.training.conftest import fit_tiny
from training.fit import FitResult
from training.predict import score_files

BF16_TOLERANCE = 0.03
needs_bf16 = pytest.mark.skipif(
    not ({"amx_bf16", "avx512_bf16"} & cpu_flags()), reason="this CPU has no bf16 units"
)


@pytest.fixture
def back_to_fp32() -> Iterator[None]:
    """The precision is process-wide: leave it as the other tests expect."""
    yield
    configure_runtime("fp32")


def valid_files(demo_dir: Path) -> list[Path]:
    return sorted((demo_dir / "valid").rglob("*.png"))


@needs_bf16
def test_precision_bf16_serves_the_fp32_answers(
    fitted: FitResult, demo_dir: Path, back_to_fp32: None
) -> None:
    paths = valid_files(demo_dir)
    fp32 = load_published(fitted.path, configure_runtime("fp32"))
    (exact,) = score_files(fp32, paths, batch_size=64)
    bf16 = load_published(fitted.path, configure_runtime("bf16"))
    assert bf16.precision == "bf16"
    (fast,) = score_files(bf16, paths, batch_size=64)
    diff = np.abs(exact.probabilities - fast.probabilities)
    assert diff.max() <= BF16_TOLERANCE
    assert diff.max() > 0  # bf16 really ran: identical output would mean fp32 again
    assert (exact.probabilities.argmax(1) == fast.probabilities.argmax(1)).all()


@needs_bf16
def test_precision_fit_records_it_and_keys_the_feature_cache_by_it(
    demo_dir: Path, tmp_path: Path, back_to_fp32: None
) -> None:
    fast = fit_tiny(demo_dir, tmp_path, precision="bf16", epochs=1)
    assert fast.metadata.precision == "bf16"
    assert fast.metadata.training["precision"]["effective"] == "bf16"
    assert fast.images_through_base == 36
    # fp32 features are not bf16 features: a different precision misses the cache.
    exact = fit_tiny(demo_dir, tmp_path, precision="fp32", epochs=1)
    assert exact.metadata.precision == "fp32"
    assert exact.images_through_base == 36
    again = fit_tiny(demo_dir, tmp_path, precision="bf16", epochs=1)
    assert again.images_through_base == 0


def test_precision_explicit_bf16_without_units_is_exit_2(
    demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelstore.runtime
    from training.cli import main

    monkeypatch.setattr(modelstore.runtime, "cpu_flags", lambda *_: {"avx2"})
    args = ["fit", "--data", str(demo_dir), "--name", "m", "--models-dir", str(tmp_path)]
    args += ["--base-weights", "none", "--image-size", "32", "--precision", "bf16", "--quiet"]
    code = main(args)
    assert code == 2
    assert not (tmp_path / "m").exists()
