from __future__ import annotations

import json
import re
import shutil
from base64 import b64decode
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import training.fit
from bench.support.bad_inputs import ISSUE_TIFF_B64
from imaging import load_image
from modelstore.layout import list_versions
from modelstore.metadata import read_metadata
from tests.conftest import encode
from tests.training.conftest import TINY, export_rule_model, fit_tiny
from training.cli import EXIT_GATE, main
from training.data import DataError
from training.fit import FitResult, fit


def test_fit_writes_version_1_then_2_without_overwriting(demo_dir: Path, tmp_path: Path) -> None:
    first = fit_tiny(demo_dir, tmp_path)
    v1_meta = (first.path / "metadata.json").read_bytes()
    second = fit_tiny(demo_dir, tmp_path)
    assert (first.version, second.version) == (1, 2)
    assert list_versions(tmp_path / "models" / "m") == [1, 2]
    assert (first.path / "metadata.json").read_bytes() == v1_meta
    assert json.loads((second.path / "metadata.json").read_text())["version"] == 2


def test_fit_savedmodel_signatures_return_probabilities(fitted: FitResult, demo_dir: Path) -> None:
    meta = json.loads((fitted.path / "metadata.json").read_text())
    assert meta["labels"] == sorted(p.name for p in (demo_dir / "train").iterdir())
    assert meta["base_weights"]["kind"] == "hed"
    assert meta["training"]["class_counts"]["train"] == {"car": 12, "truck": 12}
    assert meta["metrics"]["validation"]["accuracy"] == fitted.metrics["accuracy"]
    assert (fitted.path / "learning_curves.png").stat().st_size > 0
    assert (fitted.path / "confusion_matrix.png").stat().st_size > 0
    loaded = tf.saved_model.load(str(fitted.path))
    files = sorted((demo_dir / "valid" / "car").iterdir())[:3]
    pictures = np.stack([load_image(f, 32) for f in files])
    by_pixels = loaded.signatures["serving_default"](images=tf.constant(pictures))["probabilities"]
    encoded = tf.constant([encode(p, "PNG") for p in pictures])
    by_bytes = loaded.signatures["serve_bytes"](image_bytes=encoded)["probabilities"]
    for probs in (by_pixels.numpy(), by_bytes.numpy()):
        assert probs.shape == (3, 2)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # Same 32x32 pixels both ways, so the two signatures agree closely.
    np.testing.assert_allclose(by_pixels.numpy(), by_bytes.numpy(), atol=1e-4)


def test_fit_parity_savedmodel_matches_keras_model(fitted: FitResult, demo_dir: Path) -> None:
    path = sorted((demo_dir / "valid" / "truck").iterdir())[0]
    picture = load_image(path, 32)[None]
    in_process = np.asarray(fitted.model(picture, training=False))
    loaded = tf.saved_model.load(str(fitted.path))
    exported = loaded.signatures["serving_default"](images=tf.constant(picture))["probabilities"]
    assert np.abs(exported.numpy() - in_process).max() <= 1e-5


def test_fit_interrupted_before_rename_leaves_no_version(
    demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object) -> None:  # the plots are written inside the temporary folder
        raise KeyboardInterrupt("simulated kill during export")

    monkeypatch.setattr(training.fit, "plot_confusion_matrix", crash)
    with pytest.raises(KeyboardInterrupt):
        fit_tiny(demo_dir, tmp_path)
    assert list_versions(tmp_path / "models" / "m") == []
    assert [p.name for p in (tmp_path / "models" / "m").iterdir() if p.is_dir()] == []


def test_fit_unreadable_files_skipped_and_reported(
    demo_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (demo_copy / "train" / "car" / "notes.txt").write_text("not a picture")
    good = (demo_copy / "train" / "truck" / "truck_00000.png").read_bytes()
    (demo_copy / "train" / "truck" / "cut.png").write_bytes(good[: len(good) // 2])
    # The hardening issue's TIFF: Pillow raises TypeError on it, which crashed the job.
    (demo_copy / "train" / "car" / "float.tif").write_bytes(b64decode(ISSUE_TIFF_B64))
    result = fit_tiny(demo_copy, tmp_path)
    skipped = result.metadata.training["skipped_files"]
    assert skipped["count"] == 3
    assert {Path(f).name for f in skipped["files"]} == {"notes.txt", "cut.png", "float.tif"}
    assert result.metadata.training["class_counts"]["train"] == {"car": 12, "truck": 12}
    err = capsys.readouterr().err
    assert "skipped 3 unreadable file(s)" in err and "notes.txt" in err and "float.tif" in err


def test_fit_class_without_readable_image_is_error(demo_copy: Path, tmp_path: Path) -> None:
    for f in (demo_copy / "valid" / "truck").iterdir():
        f.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"valid.*truck|truck.*valid"):
        fit_tiny(demo_copy, tmp_path)
    assert (
        not (tmp_path / "models" / "m").exists() or list_versions(tmp_path / "models" / "m") == []
    )


def test_fit_empty_class_folder_is_error_naming_it(demo_copy: Path, tmp_path: Path) -> None:
    (demo_copy / "train" / "bus").mkdir()
    (demo_copy / "valid" / "bus").mkdir()
    code = main(
        [
            "fit",
            "--data",
            str(demo_copy),
            "--name",
            "m",
            "--models-dir",
            str(tmp_path / "models"),
            "--base-weights",
            "none",
            "--image-size",
            "32",
        ]
    )
    assert code == 2
    with pytest.raises(DataError, match=str(demo_copy / "train" / "bus")):
        fit(demo_copy, "m", tmp_path / "models", base_weights="none", progress=False, **TINY)


def test_fit_gate_refuses_worse_model_and_publishes_nothing(
    fitted: FitResult, demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Version 1 is the session's fitted model. The new run learns from swapped train
    # labels, so on the (correct) validation files it is really worse, not equal.
    models = tmp_path / "models"
    shutil.copytree(fitted.path, models / "car_truck" / "1")
    swapped = tmp_path / "swapped"
    shutil.copytree(demo_dir / "valid", swapped / "valid")
    for folder, pictures in (("car", "truck"), ("truck", "car")):
        shutil.copytree(demo_dir / "train" / pictures, swapped / "train" / folder)
    cache = fitted.path.parents[2] / "cache"  # holds the hed features of these very files
    args = ["fit", "--data", str(swapped), "--name", "car_truck", "--models-dir", str(models)]
    args += ["--base-weights", "hed", "--image-size", "32", "--epochs", "3", "--batch-size", "16"]
    args += ["--patience", "3", "--cache-dir", str(cache), "--promote-if-better", "--quiet"]
    assert main(args) == EXIT_GATE
    err = capsys.readouterr().err
    found = re.search(r"accuracy ([\d.]+) does not beat version 1 \(([\d.]+) on the same", err)
    assert found, err
    new, current = (float(x) for x in found.groups())
    # Version 1 re-scored on the same files by the gate agrees with its own fit.
    assert current == pytest.approx(fitted.metrics["accuracy"], abs=1e-4)
    assert new < current
    assert list_versions(models / "car_truck") == [1]
    assert not list((models / "car_truck").glob(".tmp-*"))


def test_fit_gate_publishes_better_model(fitted: FitResult, demo_dir: Path, tmp_path: Path) -> None:
    # Version 1 always answers "truck": exactly half of the balanced validation files.
    models = tmp_path / "models"
    export_rule_model(models, "car_truck", ["car", "truck"], [[0, 0]] * 3, [0, 1])
    result = fit_tiny(
        demo_dir,
        tmp_path,
        "car_truck",
        base_weights="hed",
        cache_dir=str(fitted.path.parents[2] / "cache"),
        promote_if_better=True,
    )
    assert result.metrics["accuracy"] > 0.5
    assert result.version == 2
    assert list_versions(models / "car_truck") == [1, 2]
    assert result.metadata.gate == {
        "accuracy": result.metrics["accuracy"],
        "compared_with": {"version": 1, "accuracy": 0.5},
    }
    assert read_metadata(result.path).gate == result.metadata.gate


def test_fit_base_layer_cut_exports_and_records_it(demo_dir: Path, tmp_path: Path) -> None:
    result = fit_tiny(demo_dir, tmp_path, "cut", base_layer="block3_pool")
    assert result.metadata.training["hyperparameters"]["base_layer"] == "block3_pool"
    assert list((tmp_path / "c").glob("*-32px-block3_pool"))
    picture = load_image(sorted((demo_dir / "valid" / "car").iterdir())[0], 32)[None]
    loaded = tf.saved_model.load(str(result.path))
    exported = loaded.signatures["serving_default"](images=tf.constant(picture))["probabilities"]
    in_process = np.asarray(result.model(picture, training=False))
    assert np.abs(exported.numpy() - in_process).max() <= 1e-5


def test_fit_unknown_base_layer_is_error(demo_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="block3_pool"):
        fit(
            demo_dir,
            "m",
            tmp_path / "models",
            base_weights="none",
            base_layer="nope",
            progress=False,
            **TINY,
        )


def test_head_probabilities_scores_every_row_in_order_across_batches() -> None:
    # The validation scores behind every published metric: each row's own
    # probabilities, in order, whatever the batch boundaries (10 rows, batches of 4).
    from training.fit import head_probabilities
    from training.model import build_head

    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 2, 2, 3)).astype(np.float32)
    head = build_head((2, 2, 3), 3, kind="flatten", width=8, dropout=0.5, adapt_to=x)
    probs = head_probabilities(head, x, batch=4)
    one_by_one = np.concatenate([np.asarray(head(x[i : i + 1], training=False)) for i in range(10)])
    assert probs.shape == (10, 3)
    np.testing.assert_allclose(probs, one_by_one, atol=1e-6)
    assert head_probabilities(head, x[:0]).shape == (0, 3)
