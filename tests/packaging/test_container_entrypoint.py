"""scripts/container-entrypoint.sh: seeds the model volume with the image's built-in models."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.packaging.deploy_files import REPO

SCRIPT = REPO / "scripts" / "container-entrypoint.sh"


def _run(builtin: Path, models: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VGGSVC_BUILTIN_MODELS_DIR=str(builtin), VGGSVC_MODELS_DIR=str(models))
    return subprocess.run(
        ["sh", str(SCRIPT), *command], env=env, capture_output=True, text=True, check=False
    )


def _builtin(tmp_path: Path) -> Path:
    version = tmp_path / "builtin" / "vgg16_imagenet" / "1"
    (version / "variables").mkdir(parents=True)
    (version / "metadata.json").write_text('{"name": "vgg16_imagenet", "version": 1}\n')
    (version / "variables" / "variables.index").write_bytes(b"\x00weights")
    return tmp_path / "builtin"


def test_entrypoint_seeds_empty_volume_then_runs_command(tmp_path: Path) -> None:
    builtin, models = _builtin(tmp_path), tmp_path / "models"
    result = _run(builtin, models, "echo", "served", "--port", "8000")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "served --port 8000\n"
    seeded = models / "vgg16_imagenet" / "1"
    assert (seeded / "metadata.json").read_text() == '{"name": "vgg16_imagenet", "version": 1}\n'
    assert (seeded / "variables" / "variables.index").read_bytes() == b"\x00weights"
    assert sorted(p.name for p in models.iterdir()) == ["vgg16_imagenet"]  # no temp left


def test_entrypoint_keeps_model_already_in_volume(tmp_path: Path) -> None:
    builtin, models = _builtin(tmp_path), tmp_path / "models"
    (models / "vgg16_imagenet" / "7").mkdir(parents=True)
    result = _run(builtin, models, "true")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (models / "vgg16_imagenet").iterdir()) == ["7"]


def test_entrypoint_unwritable_volume_still_runs_command(tmp_path: Path) -> None:
    builtin = _builtin(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = _run(builtin, blocker / "models", "echo", "still serving")
    assert result.returncode == 0
    assert result.stdout == "still serving\n"
    assert "warning" in result.stderr


def test_entrypoint_command_exit_status_is_passed_on(tmp_path: Path) -> None:
    result = _run(_builtin(tmp_path), tmp_path / "models", "sh", "-c", "exit 3")
    assert result.returncode == 3
