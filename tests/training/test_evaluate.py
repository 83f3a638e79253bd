from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.cli import main
from training.evaluate import evaluate
from training.fit import FitResult


def test_evaluate_valid_folder_agrees_with_fit(fitted: FitResult, demo_dir: Path) -> None:
    report = evaluate(fitted.path, demo_dir / "valid", progress=False)
    assert report["count"] == 12
    assert report["accuracy"] == pytest.approx(fitted.metrics["accuracy"])
    assert report["confusion_matrix"] == fitted.metrics["confusion_matrix"]
    assert set(report["per_class"]) == {"car", "truck"}


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
