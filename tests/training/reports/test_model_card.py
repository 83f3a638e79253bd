"""MODEL_CARD.md: written inside the draft by fit, from metadata alone, with the real numbers."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import training.fit
from modelstore.metadata import read_metadata
from tests.training.conftest import fit_tiny
from training.cli import main
from training.evaluate import evaluate
from training.fit import FitResult
from training.reports.model_card import MODEL_CARD_FILE, limitations, render_model_card
from training.scores import wilson_interval


def section(card: str, title: str) -> str:
    """The text of the `## title...` section, up to the next `## `."""
    match = re.search(rf"^## {re.escape(title)}.*?$(.*?)(?=^## |\Z)", card, re.M | re.S)
    assert match, f"no section {title!r} in the card"
    return match.group(1)


def table(text: str, first_header: str) -> list[list[str]]:
    """Body rows of the Markdown table whose first header cell is `first_header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    return rows


def test_model_card_fit_writes_real_per_class_numbers(fitted: FitResult) -> None:
    card = (fitted.path / MODEL_CARD_FILE).read_text()
    assert card.startswith("# Model card: car_truck, version 1\n")
    rows = {row[0]: row[1:] for row in table(section(card, "Metrics"), "class")}
    recorded = read_metadata(fitted.path).metrics["validation"]["per_class"]  # type: ignore[index]
    for label in ("car", "truck"):
        numbers = fitted.metrics["per_class"][label]
        assert recorded[label] == numbers
        p, r = numbers["precision"], numbers["recall"]
        f1 = 2 * p * r / (p + r) if p + r else 0.0  # by hand, not scores.f1_score
        assert rows[label] == [f"{p:.3f}", f"{r:.3f}", f"{f1:.3f}", str(numbers["support"])]
    accuracy = fitted.metrics["accuracy"]
    assert f"Accuracy **{100 * accuracy:.1f}%** (" in card


def test_model_card_confusion_counts_match_evaluate_and_png_exists(
    fitted: FitResult, demo_dir: Path
) -> None:
    card = (fitted.path / MODEL_CARD_FILE).read_text()
    metrics = section(card, "Metrics")
    rows = table(metrics, r"true \ predicted")
    counts = [[int(c) for c in row[1:]] for row in rows]
    report = evaluate(fitted.path, demo_dir, progress=False, precision="fp32")
    assert counts == report["confusion_matrix"]
    assert [row[0] for row in rows] == report["labels"]
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card)
    assert links == ["confusion_matrix.png", "learning_curves.png"]
    for link in links:
        assert (fitted.path / link).stat().st_size > 0


def test_model_card_states_weights_architecture_data_and_training(fitted: FitResult) -> None:
    card = (fitted.path / MODEL_CARD_FILE).read_text()
    weights = fitted.metadata.base_weights
    base = section(card, "Base weights")
    assert f"kind: `{weights.kind}`" in base and f"sha256: `{weights.sha256}`" in base
    assert weights.source in base
    architecture = section(card, "Architecture")
    assert "32x32" in architecture and "`block4_pool`" in architecture  # hed: auto cut
    assert "mirror image" in architecture and "chosen by auto" in architecture
    assert "flatten -> Dense 256 (relu) -> dropout 0.5 -> Dense 2 (softmax)" in architecture
    data = table(section(card, "Data"), "class")
    assert data == [["car", "12", "6"], ["truck", "12", "6"], ["**total**", "24", "12"]]
    record = fitted.metadata.training or {}
    trained = section(card, "How it was trained")
    assert f"{record['epochs_run']} epoch(s) run of at most 3" in trained
    assert f"weights of epoch {record['best_epoch']} " in trained
    assert ["--epochs", "3"] in table(trained, "flag")
    notes = section(card, "Limitations")
    assert "edge detection" in notes and "32x32" in notes and "12 picture(s)" in notes


def test_model_card_written_inside_draft_before_metadata(
    demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    seen = []
    real = training.fit.write_metadata

    def spy(version_dir: Path, metadata: object) -> None:
        seen.append((version_dir.name, (version_dir / MODEL_CARD_FILE).is_file()))
        real(version_dir, metadata)  # type: ignore[arg-type]

    monkeypatch.setattr(training.fit, "write_metadata", spy)
    result = fit_tiny(demo_dir, tmp_path)
    # The card was in the hidden draft before metadata.json marked it complete, so it
    # appears with the version in one rename.
    assert len(seen) == 1 and seen[0][0].startswith(".tmp-") and seen[0][1]
    assert (result.path / MODEL_CARD_FILE).is_file()
    # fit's epoch lines on stderr say how long each epoch took.
    epochs = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert epochs and all(re.match(r"epoch \d+/3 \d+\.\d\ds accuracy ", line) for line in epochs)


def test_model_card_regenerated_from_metadata_equals_fits(
    fitted: FitResult, tmp_path: Path
) -> None:
    copy = tmp_path / "models" / "car_truck" / "1"
    shutil.copytree(fitted.path, copy)
    (copy / MODEL_CARD_FILE).unlink()
    assert main(["model-card", str(copy.parent)]) == 0  # models/NAME: its latest version
    assert (copy / MODEL_CARD_FILE).read_text() == (fitted.path / MODEL_CARD_FILE).read_text()
    assert not list(copy.glob(".*partial"))


def test_model_card_gate_results_and_limitations_follow_metadata(fitted: FitResult) -> None:
    training_record = {**(fitted.metadata.training or {})}
    training_record["class_counts"] = {
        "train": {"car": 900, "truck": 1000},
        "valid": {"car": 300, "truck": 300},
    }
    meta = fitted.metadata.model_copy(
        update={
            "image_size": 224,
            "base_weights": fitted.metadata.base_weights.model_copy(update={"kind": "imagenet"}),
            "training": training_record,
            "metrics": {"validation": {**fitted.metrics, "count": 600, "accuracy": 0.95}},
            "gate": {
                "accuracy": 0.95,
                "min_accuracy": 0.9,
                "compared_with": {"version": 4, "accuracy": 0.93},
            },
        }
    )
    gate = section(render_model_card(meta), "Quality gate")
    assert "`--min-accuracy 0.9`: passed (95.0% >= 90.0%)" in gate
    assert "beat version 4 (95.0% > 93.0% on the same files)" in gate
    # ImageNet weights, 224 px, 900+ pictures a class, 600 validated, a gate: nothing to warn.
    assert limitations(meta) == []
    assert limitations(fitted.metadata) != []


def test_wilson_interval_known_values() -> None:
    # 8 of 12: the Wilson 95% interval is 0.3906 .. 0.8619 (textbook formula, z = 1.96).
    low, high = wilson_interval(8, 12)
    assert (round(low, 4), round(high, 4)) == (0.3906, 0.8619)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(10, 10)[1] == 1.0
    # Around the proportion, and narrower with more data.
    low, high = wilson_interval(90, 100)
    assert 0.82 < low < 0.9 < high < 0.95
    assert wilson_interval(900, 1000)[1] - wilson_interval(900, 1000)[0] < high - low
