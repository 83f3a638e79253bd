"""`auto` settings follow the base weights, flip test-time augmentation lives in the
exported graph, and `--warm-start` continues from the latest version's head."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from imaging import load_image
from modelstore.metadata import read_metadata
from tests.training.conftest import SIZE, TINY, fit_tiny
from training.cli import parse_args
from training.config import FitConfig
from training.defaults import PROFILES, resolve_auto
from training.fit import WARM_EPOCHS, FitResult


def test_auto_follows_the_weights_and_explicit_values_win() -> None:
    hed, why = resolve_auto(FitConfig(image_size=64), "hed")
    assert (hed.base_layer, hed.image_size, hed.width) == ("block4_pool", 64, 256)
    assert hed.flip_augment is True and hed.flip_tta is True
    assert "image_size" not in why  # given, not chosen
    assert "hed" in why["base_layer"]["reason"] and why["base_layer"]["value"] == "block4_pool"
    imagenet, _ = resolve_auto(FitConfig(), "imagenet")
    assert (imagenet.base_layer, imagenet.image_size, imagenet.flip_tta) == (
        "block5_pool",
        128,
        False,
    )
    # A weights file of the user's is treated like ImageNet weights (the whole base).
    assert resolve_auto(FitConfig(), "file")[0] == imagenet
    # Warm starts are opt-in (they cost accuracy in bench/results/retrain.json).
    assert resolve_auto(FitConfig(promote_if_better=True), "hed")[0].warm_start is False
    assert "retrain.json" in resolve_auto(FitConfig(), "hed")[1]["warm_start"]["reason"]
    assert resolve_auto(FitConfig(warm_start=True), "hed")[0].warm_start is True
    assert set(PROFILES) >= {"hed", "imagenet", "none", "file"}
    # Label smoothing: measured for hed only; elsewhere one-hot targets.
    assert (hed.label_smoothing, imagenet.label_smoothing) == (0.2, 0.0)
    assert resolve_auto(FitConfig(label_smoothing=0.05), "hed")[0].label_smoothing == 0.05


def test_label_smoothing_trains_towards_softened_targets() -> None:
    # Separable features, trained long: one-hot targets drive the top probability to ~1,
    # smoothing 0.2 to ~0.9 (Keras' targets: 1 - 0.2 + 0.2 / 2), never beyond.
    from training.fit import head_probabilities, train_head

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 16)
    x = (rng.normal(size=(32, 4)) + 5.0 * (2 * y[:, None] - 1)).astype(np.float32)
    tops = {}
    for smoothing in (0.0, 0.2):
        cfg = FitConfig(
            width=0,
            epochs=60,
            batch_size=32,
            learning_rate=0.1,
            patience=60,
            label_smoothing=smoothing,
        )
        head, _ = train_head(cfg, x, y, x, y, 2)
        probs = head_probabilities(head, x)
        assert (probs.argmax(axis=1) == y).all(), smoothing
        tops[smoothing] = float(probs.max(axis=1).mean())
    assert tops[0.0] > 0.98, tops
    assert 0.85 < tops[0.2] < 0.93


def test_fit_flags_accept_auto_on_and_off(tmp_path: Path) -> None:
    args = parse_args(
        [
            "fit",
            "--data",
            str(tmp_path),
            "--name",
            "m",
            "--image-size",
            "auto",
            "--width",
            "0",
            "--flip-augment",
            "off",
            "--flip-tta",
            "--warm-start",
            "on",
        ]
    )
    assert (args.image_size, args.width, args.flip_augment, args.flip_tta, args.warm_start) == (
        "auto",
        0,
        False,
        True,
        True,
    )
    defaults = parse_args(["fit", "--data", str(tmp_path), "--name", "m"])
    assert (defaults.base_layer, defaults.image_size, defaults.flip_tta) == ("auto", "auto", "auto")


@pytest.mark.parametrize(("flag", "value"), [("--image-size", "big"), ("--flip-tta", "maybe")])
def test_fit_flags_refuse_other_words(
    tmp_path: Path, flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["fit", "--data", str(tmp_path), "--name", "m", flag, value])
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err


def test_fitted_hed_model_records_what_auto_chose(fitted: FitResult) -> None:
    training = read_metadata(fitted.path).training or {}
    hyper, auto = training["hyperparameters"], training["auto_settings"]
    assert hyper["base_layer"] == "block4_pool" and hyper["width"] == 256
    assert hyper["flip_augment"] is True and hyper["flip_tta"] is True
    assert auto["base_layer"]["value"] == "block4_pool"
    assert "accuracy_search_hed.json" in auto["base_layer"]["reason"]
    assert "image_size" not in auto  # the fixture gives 32 px explicitly


def _pictures(demo_dir: Path, n: int = 4) -> np.ndarray:
    files = sorted((demo_dir / "valid" / "car").iterdir())[:n]
    return np.stack([load_image(f, SIZE) for f in files])


def test_flip_tta_export_answers_the_same_for_a_picture_and_its_mirror(
    fitted: FitResult, demo_dir: Path
) -> None:
    pictures = _pictures(demo_dir)
    serve = tf.saved_model.load(str(fitted.path)).signatures["serving_default"]
    plain = serve(images=tf.constant(pictures))["probabilities"].numpy()
    mirrored = serve(images=tf.constant(pictures[:, :, ::-1].copy()))["probabilities"].numpy()
    np.testing.assert_allclose(plain, mirrored, atol=1e-6)
    # ... and the pictures are not symmetric themselves: without TTA the answers differ.
    head_only = fitted.model.get_layer("head")
    base = next(
        layer
        for layer in fitted.model.layers
        if isinstance(layer, keras.Model) and layer.name != "head"
    )
    preprocess = fitted.model.get_layer("vgg_preprocess")
    one_way = head_only(base(preprocess(pictures))).numpy()
    other_way = head_only(base(preprocess(pictures[:, :, ::-1].copy()))).numpy()
    assert np.abs(one_way - other_way).max() > 1e-4
    np.testing.assert_allclose(plain, (one_way + other_way) / 2, atol=1e-5)


def test_warm_start_continues_from_the_latest_head(demo_dir: Path, tmp_path: Path) -> None:
    first = fit_tiny(demo_dir, tmp_path, flip_augment=False)
    # A learning rate too small to move anything: a warm head answers as version 1 did.
    second = fit_tiny(demo_dir, tmp_path, flip_augment=False, warm_start=True, learning_rate=1e-12)
    pictures = tf.constant(_pictures(demo_dir))
    answers = [
        tf.saved_model.load(str(r.path))
        .signatures["serving_default"](images=pictures)["probabilities"]
        .numpy()
        for r in (first, second)
    ]
    np.testing.assert_allclose(answers[0], answers[1], atol=1e-5)
    training = read_metadata(second.path).training or {}
    assert training["warm_start"] == {
        "used": True,
        "from_version": 1,
        "schedule": {
            "max_epochs": min(TINY["epochs"], WARM_EPOCHS),
            "patience": 1,
            "batch_size": 128,
            "learning_rate": pytest.approx(0.3e-12, rel=1e-6, abs=0),
        },
    }
    assert training["epochs_run"] <= WARM_EPOCHS
    # The recorded schedule is the one the head was trained with.
    optimizer = second.model.get_layer("head").optimizer
    assert float(optimizer.learning_rate) == pytest.approx(0.3e-12, rel=1e-4, abs=0)
    # A cold head with the same tiny learning rate starts elsewhere: different answers.
    cold = fit_tiny(demo_dir, tmp_path, flip_augment=False, learning_rate=1e-12, seed=5)
    cold_answers = (
        tf.saved_model.load(str(cold.path))
        .signatures["serving_default"](images=pictures)["probabilities"]
        .numpy()
    )
    assert np.abs(cold_answers - answers[0]).max() > 1e-3


def test_warm_start_refuses_a_head_of_another_shape(demo_dir: Path, tmp_path: Path) -> None:
    fit_tiny(demo_dir, tmp_path, flip_augment=False, width=8)
    second = fit_tiny(demo_dir, tmp_path, flip_augment=False, width=16, warm_start=True)
    warm = (read_metadata(second.path).training or {})["warm_start"]
    assert warm["used"] is False and "width" in warm["reason"]
