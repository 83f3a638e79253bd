from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from imaging import load_image
from tests.conftest import encode
from tests.training.conftest import export_rule_model
from training.cli import main
from training.evaluate import evaluate
from training.fit import FitResult


def _counted_by_hand(truth: list[int], probs: list[np.ndarray], labels: list[str]) -> dict:
    """Confusion, accuracy, precision and recall counted with plain loops (not training.scores)."""
    n = len(labels)
    confusion = [[0] * n for _ in range(n)]
    for true, p in zip(truth, probs, strict=True):
        confusion[true][int(np.argmax(p))] += 1
    per_class = {}
    for c, label in enumerate(labels):
        predicted = sum(confusion[t][c] for t in range(n))
        actual = sum(confusion[c])
        precision = confusion[c][c] / predicted if predicted else 0.0
        recall = confusion[c][c] / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    loss = sum(-math.log(max(float(p[t]), 1e-7)) for t, p in zip(truth, probs, strict=True))
    return {
        "count": len(truth),
        "accuracy": sum(confusion[c][c] for c in range(n)) / len(truth),
        "loss": loss / len(truth),
        "per_class": per_class,
        "confusion_matrix": confusion,
    }


def _assert_same_scores(got: dict, expected: dict) -> None:
    assert got["count"] == expected["count"]
    assert got["confusion_matrix"] == expected["confusion_matrix"]
    assert got["accuracy"] == pytest.approx(expected["accuracy"])
    assert got["loss"] == pytest.approx(expected["loss"], abs=1e-4)
    assert got["per_class"].keys() == expected["per_class"].keys()
    for label, numbers in expected["per_class"].items():
        assert got["per_class"][label] == pytest.approx(numbers), label


def test_evaluate_valid_folder_agrees_with_fit(fitted: FitResult, demo_dir: Path) -> None:
    # The exported graph called directly on each valid picture, scored by hand: neither
    # fit's numbers nor evaluate's go through the code that produced the other.
    labels = ["car", "truck"]
    serve = tf.saved_model.load(str(fitted.path)).signatures["serving_default"]
    truth, probs = [], []
    for index, label in enumerate(labels):
        for path in sorted((demo_dir / "valid" / label).iterdir()):
            picture = tf.constant(load_image(path, 32)[None])
            probs.append(serve(images=picture)["probabilities"].numpy()[0])
            truth.append(index)
    expected = _counted_by_hand(truth, probs, labels)
    assert expected["count"] == 12
    report = evaluate(fitted.path, demo_dir / "valid", progress=False, precision="fp32")
    _assert_same_scores(report, expected)
    _assert_same_scores(fitted.metrics, expected)


def test_evaluate_rule_model_scores_equal_hand_computed_numbers(tmp_path: Path) -> None:
    # car logit = red - blue, truck logit = blue - red: a pure red picture scores
    # car = sigmoid(2) = 0.8808, a pure blue one truck = 0.8808.
    model = export_rule_model(
        tmp_path / "models", "rule", ["car", "truck"], [[1, -1], [0, 0], [-1, 1]], [0, 0]
    )
    red, blue = (255, 0, 0), (0, 0, 255)
    folders = {"car": [red, red, red, blue], "truck": [blue, blue, red, red]}
    for label, colours in folders.items():
        (tmp_path / "valid" / label).mkdir(parents=True)
        for i, colour in enumerate(colours):
            picture = np.full((20 + i, 24, 3), colour, np.uint8)  # distinct files
            (tmp_path / "valid" / label / f"{i}.png").write_bytes(encode(picture))
    report = evaluate(model, tmp_path / "valid", progress=False, precision="fp32")
    # Rows true class, columns predicted: car 3 right 1 wrong; truck 2 right 2 wrong.
    assert report["confusion_matrix"] == [[3, 1], [2, 2]]
    assert report["count"] == 8
    assert report["accuracy"] == pytest.approx(5 / 8)
    assert report["per_class"]["car"] == pytest.approx(
        {"precision": 3 / 5, "recall": 3 / 4, "f1": 2 / 3, "support": 4}
    )
    assert report["per_class"]["truck"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 4, "f1": 4 / 7, "support": 4}
    )
    # Five right at -ln(sigmoid(2)) = ln(1 + e^-2), three wrong at ln(1 + e^2):
    # (5 * 0.126928 + 3 * 2.126928) / 8.
    assert report["loss"] == pytest.approx(0.876928, abs=1e-5)


def test_evaluate_cli_prints_json_and_writes_plot(
    fitted: FitResult, demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "cm.png"
    model_dir = fitted.path.parent  # models/NAME resolves to its latest version
    code = main(
        [
            "evaluate",
            "--model",
            str(model_dir),
            "--data",
            str(demo_dir),
            "--plot",
            str(plot),
            "--quiet",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["version"] == 1 and report["labels"] == ["car", "truck"]
    assert 0.0 <= report["per_class"]["car"]["precision"] <= 1.0
    assert plot.stat().st_size > 0


def test_evaluate_unknown_class_folder_is_error(
    fitted: FitResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("car", "boat"):
        (tmp_path / "v" / name).mkdir(parents=True)
    assert main(["evaluate", "--model", str(fitted.path), "--data", str(tmp_path / "v")]) == 2
    assert "boat" in capsys.readouterr().err
