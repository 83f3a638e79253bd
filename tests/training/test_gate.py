"""The quality gate's comparisons at their boundaries, against a model of known accuracy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.conftest import export_rule_model
from training.gate import GateFailedError, check_gate


def valid_files(demo_dir: Path) -> tuple[list[Path], list[str]]:
    pairs = [(p, c) for c in ("car", "truck") for p in sorted((demo_dir / "valid" / c).iterdir())]
    return [p for p, _ in pairs], [c for _, c in pairs]


def test_gate_promote_if_better_needs_strictly_higher_accuracy(
    demo_dir: Path, tmp_path: Path
) -> None:
    # Version 1 always answers "truck": 6 of the 12 validation files, accuracy 0.5.
    export_rule_model(tmp_path, "m", ["car", "truck"], [[0, 0]] * 3, [0, 1])
    paths, labels = valid_files(demo_dir)
    for worse_or_equal in (5 / 12, 0.5):
        with pytest.raises(GateFailedError, match=r"does not beat version 1 \(0\.5000"):
            check_gate(worse_or_equal, None, True, tmp_path / "m", paths, labels)
    report = check_gate(7 / 12, None, True, tmp_path / "m", paths, labels)
    assert report == {"accuracy": 7 / 12, "compared_with": {"version": 1, "accuracy": 0.5}}


def test_gate_promote_if_better_publishes_a_first_version(tmp_path: Path) -> None:
    assert check_gate(0.1, None, True, tmp_path / "new", [], []) == {"accuracy": 0.1}


def test_gate_min_accuracy_is_inclusive(tmp_path: Path) -> None:
    report = check_gate(0.75, 0.75, False, tmp_path, [], [])
    assert report == {"accuracy": 0.75, "min_accuracy": 0.75}
    with pytest.raises(GateFailedError, match=r"below --min-accuracy 0\.7500"):
        check_gate(0.74, 0.75, False, tmp_path, [], [])
