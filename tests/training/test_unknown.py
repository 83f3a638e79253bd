"""The unknown scorer fitted at `fit`: calibration, export, batch scoring, evaluate --ood,
and the Grad-CAM heatmap's sanity on pictures whose class cue sits in one half."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imaging.decode import load_image
from modelstore.loader import load_published
from modelstore.metadata import InvalidModelError, read_metadata, write_metadata
from modelstore.runtime import configure_runtime
from modelstore.unknown import EXPLAIN_SIGNATURE, UNKNOWN_SIGNATURE, UnknownRecord
from tests.training.conftest import SIZE, fit_tiny
from training.evaluate import evaluate
from training.fit import FitResult
from training.model import VGG_BGR_MEAN
from training.predict import predict_to_stream
from training.reports.model_card import MODEL_CARD_FILE
from training.scores import auroc
from training.unknown import calibrated_threshold, fit_unknown_scorer


def test_calibrated_threshold_flags_the_requested_share() -> None:
    scores = np.random.default_rng(0).normal(size=400)
    threshold = calibrated_threshold(scores, 0.05)
    assert (scores > threshold).sum() == 20  # exactly 5 % of 400
    assert (scores > calibrated_threshold(scores, 0.10)).sum() == 40


def test_fit_unknown_scorer_flags_about_five_percent_of_validation() -> None:
    rng = np.random.default_rng(1)
    train = rng.random((60, 2, 2, 8), dtype=np.float32)
    valid = rng.random((200, 2, 2, 8), dtype=np.float32)
    scorer = fit_unknown_scorer(train, valid, rate=0.05)
    flagged = float((scorer.scores(valid) > scorer.threshold).mean())
    assert flagged == pytest.approx(0.05, abs=0.005)
    assert scorer.calibration["flagged"] == pytest.approx(flagged)
    # Farther from the bank scores higher: the training pictures themselves score ~0.
    assert scorer.scores(train).max() < 1e-5 < scorer.scores(valid).min()


def test_auroc_known_values() -> None:
    assert auroc(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 1.0
    assert auroc(np.array([0.3, 0.4]), np.array([0.1, 0.2])) == 0.0
    assert auroc(np.array([0.5, 0.5]), np.array([0.5])) == 0.5


def test_fit_exports_the_scorer_and_records_it(fitted: FitResult) -> None:
    meta = read_metadata(fitted.path)
    assert meta.unknown is not None and meta.unknown.method == "knn-cosine"
    assert {UNKNOWN_SIGNATURE, EXPLAIN_SIGNATURE} <= set(meta.signatures)
    assert meta.unknown.calibration["target_flagged"] == 0.05
    card = (fitted.path / MODEL_CARD_FILE).read_text()
    assert "## Unknown pictures" in card and f"{meta.unknown.threshold:.6g}" in card


def test_exported_scores_match_the_fit_time_calibration(fitted: FitResult, demo_dir: Path) -> None:
    """The graph scores the validation photos as `fit` did when it set the threshold."""
    # In fp32 like the fit (TINY): the precision is process-wide, and a test before this one
    # (any service test: `auto` is bf16 on this CPU) may have left bf16 switched on.
    model = load_published(fitted.path, configure_runtime("fp32"))
    assert model.beyond is not None
    paths = sorted((demo_dir / "valid").rglob("*.png"))
    pictures = np.stack([load_image(p, SIZE) for p in paths])
    probs, scores = model.predict_with_unknown(pictures)
    assert np.allclose(probs, model.predict(pictures), atol=1e-6)  # same answers
    quantiles = model.beyond.record.calibration["score_quantiles"]
    assert float(np.quantile(scores, 0.5)) == pytest.approx(quantiles["0.5"], abs=1e-4)
    flagged = float((scores > model.beyond.threshold).mean())
    # The threshold sits at a validation photo's own score, so float32 rounding between the
    # fit and the export may move that one photo across it: at most one photo apart.
    calibrated = model.beyond.record.calibration["flagged"]
    assert abs(flagged - calibrated) <= 1 / len(paths) + 1e-9


def test_predict_jsonl_carries_unknown_fields(fitted: FitResult, demo_dir: Path) -> None:
    out = io.StringIO()
    predict_to_stream(fitted.path, [demo_dir / "valid" / "car"], out, progress=False)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records and all(isinstance(r["unknown_score"], float) for r in records)
    assert all(isinstance(r["unknown"], bool) for r in records)


def test_evaluate_ood_reports_auroc_and_flagged_shares(
    fitted: FitResult, demo_dir: Path, tmp_path: Path
) -> None:
    ood = tmp_path / "ood"
    ood.mkdir()
    rng = np.random.default_rng(3)
    for i in range(6):
        pixels = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(ood / f"noise_{i}.png")
    (ood / "broken.png").write_bytes(b"not a picture")
    report = evaluate(fitted.path, demo_dir, progress=False, ood_dir=ood)
    detection = report["unknown_detection"]
    assert detection["ood_count"] == 6 and detection["in_distribution_count"] == 12
    assert 0.0 <= detection["auroc"] <= 1.0 and 0.0 <= detection["ood_flagged"] <= 1.0
    assert str(ood / "broken.png") in report["skipped_files"]
    assert "unknown_detection" not in evaluate(fitted.path, demo_dir, progress=False)


def test_loader_refuses_a_scorer_its_savedmodel_lacks(fitted: FitResult, tmp_path: Path) -> None:
    """metadata.json promises a scorer; a SavedModel without the signature is refused."""
    from bench.support.harness import export_tiny

    old = export_tiny(tmp_path / "models", "old", ["car", "truck"], SIZE)
    meta = read_metadata(old)
    meta.unknown = UnknownRecord(method="knn-cosine", representation="gap", threshold=0.1)
    write_metadata(old, meta)
    with pytest.raises(InvalidModelError, match=UNKNOWN_SIGNATURE):
        load_published(old)


VGG_RGB_MEAN = VGG_BGR_MEAN[::-1]


# 96 px, not the tests' 32: the last convolution of block 3 sees 40 px around each of
# its positions, the whole of a 32 px picture, so nothing there could be localised.
CUE_SIZE = 96


def _half_cue_data(root: Path, per_class: int, seed: int) -> None:
    """`stripes`: black and white stripes filling one half (left or right), the other
    half flat; `plain`: flat all over. Flat is VGG16's mean colour (zero after its
    preprocessing, so the zero padding draws no edge at the border); a little noise."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("valid", per_class // 2)):
        for kind in ("plain", "stripes"):
            folder = root / split / kind
            folder.mkdir(parents=True)
            for i in range(n):
                picture = _picture(kind, rng, left=bool(i % 2))
                Image.fromarray(picture).save(folder / f"{kind}_{i}.png")


def _picture(kind: str, rng: np.random.Generator, left: bool) -> np.ndarray:
    size = CUE_SIZE
    picture = np.asarray(VGG_RGB_MEAN) + rng.normal(0, 6, (size, size, 3))
    if kind == "stripes":
        period = int(rng.integers(3, 6))
        stripes = (np.arange(size)[:, None] // period % 2) * 255.0
        half = slice(0, size // 2) if left else slice(size // 2, size)
        picture[:, half, :] = stripes[:, None] + rng.normal(0, 6, (size, size // 2, 3))
    return np.clip(picture, 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_heatmap_heat_sits_in_the_half_with_the_cue(tmp_path: Path) -> None:
    _half_cue_data(tmp_path / "data", per_class=24, seed=0)
    result = fit_tiny(
        tmp_path / "data",
        tmp_path,
        base_weights="hed",  # edge detectors: stripes are what they respond to
        base_layer="block3_pool",  # a 24x24 map at 96 px under the last convolution
        image_size=CUE_SIZE,
        epochs=15,
        patience=15,
    )
    assert result.metrics["accuracy"] == 1.0
    model = load_published(result.path)
    rng = np.random.default_rng(9)
    stripes = model.labels.index("stripes")
    for left in (True, False):
        pictures = np.stack([_picture("stripes", rng, left) for _ in range(4)])
        heat, classes, _, _ = model.explain(pictures, np.full(4, -1, np.int32))
        assert (classes == stripes).all()
        width = heat.shape[2]
        left_share = heat[:, :, : width // 2].sum(axis=(1, 2)) / heat.sum(axis=(1, 2))
        cue_share = left_share if left else 1.0 - left_share
        # Most of the heat in the cue's half for every picture, and far more on average
        # (the last convolution's receptive field spills over the middle line).
        assert (cue_share > 0.5).all() and cue_share.mean() > 0.75, cue_share


@pytest.mark.slow
def test_fit_without_flip_augment_builds_bank_of_originals(demo_dir: Path, tmp_path: Path) -> None:
    result = fit_tiny(demo_dir, tmp_path, flip_augment=False, unknown_rate=0.2)
    record = read_metadata(result.path).unknown
    assert record is not None
    assert record.model_extra is not None and record.model_extra["bank_size"] == 24
    assert record.calibration["target_flagged"] == 0.2
    shutil.rmtree(tmp_path / "models")
