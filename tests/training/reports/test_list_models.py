"""`python -m training list-models`: every published version, read without TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.conftest import export_rule_model

ROOT = Path(__file__).resolve().parents[3]
PROBE = """
import sys
from training.cli import main
code = main(sys.argv[1:])
print("tensorflow imported:", "tensorflow" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """car_truck versions 1 (accuracy 0.75) and 2 (0.875), and a broken version 3."""
    models = tmp_path_factory.mktemp("listing") / "models"
    for accuracy in (0.75, 0.875):
        export_rule_model(
            models,
            "car_truck",
            ["car", "truck"],
            [[1, 0]] * 3,
            [0, 0],
            metrics={"validation": {"accuracy": accuracy}},
        )
    broken = models / "car_truck" / "3"
    broken.mkdir()
    (broken / "metadata.json").write_text('{"name": "car_truck"')  # cut short
    return models


def _list(models: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, "list-models", "--models-dir", str(models), *flags],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_list_models_table_shows_versions_accuracy_and_broken(repository: Path) -> None:
    result = _list(repository)
    assert result.returncode == 0, result.stderr
    assert "tensorflow imported: False" in result.stderr
    lines = result.stdout.splitlines()[1:4]
    rows = {line.removeprefix("*").split()[1]: line for line in lines}
    assert set(rows) == {"1", "2", "3"}, result.stdout
    assert "0.7500" in rows["1"] and "0.8750" in rows["2"]
    assert "none" in rows["2"] and "KiB" in rows["2"]  # base weights, size on disk
    assert rows["2"].startswith("*") and not rows["1"].startswith("*")  # the newest readable
    assert "broken" in rows["3"] and "metadata.json is unreadable" in rows["3"]


def test_list_models_json_has_every_field(repository: Path) -> None:
    result = _list(repository, "--json")
    assert result.returncode == 0, result.stderr
    entries = {e["version"]: e for e in json.loads(result.stdout)}
    assert [entries[v]["accuracy"] for v in (1, 2)] == [0.75, 0.875]
    assert [entries[v]["newest"] for v in (1, 2, 3)] == [False, True, False]
    assert entries[2]["base_weights"] == "none" and entries[2]["labels"] == ["car", "truck"]
    assert entries[2]["size_bytes"] > 1000 and entries[2]["created_at"]
    assert entries[3]["error"] and entries[3]["accuracy"] is None


def test_list_models_empty_repository(tmp_path: Path) -> None:
    result = _list(tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"no published model under {tmp_path}"
