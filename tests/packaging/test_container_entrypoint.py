"""scripts/container-entrypoint.sh: seeds the model volume with the image's built-in models
(a copy into a mounted volume, a link into the container's own folder)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.deploy_files import REPO

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


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A folder on another filesystem than tmp_path, as a mounted volume is in a container."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem (/dev/shm) to stand for a mounted volume")
    folder = Path(tempfile.mkdtemp(dir=shm))
    yield folder / "models"
    shutil.rmtree(folder)


def test_entrypoint_links_builtin_models_into_the_containers_own_folder(tmp_path: Path) -> None:
    """Nothing mounted at /models: a link, so a one-off command copies no 528 MB."""
    builtin, models = _builtin(tmp_path), tmp_path / "models"
    result = _run(builtin, models, "echo", "served")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "served\n"
    link = models / "vgg16_imagenet"
    assert link.is_symlink() and link.resolve() == (builtin / "vgg16_imagenet").resolve()
    assert (
        link / "1" / "metadata.json"
    ).read_text() == '{"name": "vgg16_imagenet", "version": 1}\n'
    assert sorted(p.name for p in models.iterdir()) == ["vgg16_imagenet"]
    # A second start finds it there and leaves it alone.
    again = _run(builtin, models, "true")
    assert again.returncode == 0 and "linked" not in again.stderr


def test_entrypoint_seeds_empty_volume_then_runs_command(tmp_path: Path, volume: Path) -> None:
    builtin, models = _builtin(tmp_path), volume
    result = _run(builtin, models, "echo", "served", "--port", "8000")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "served --port 8000\n"
    seeded = models / "vgg16_imagenet" / "1"
    assert (seeded / "metadata.json").read_text() == '{"name": "vgg16_imagenet", "version": 1}\n'
    assert (seeded / "variables" / "variables.index").read_bytes() == b"\x00weights"
    assert not (models / "vgg16_imagenet").is_symlink(), "a volume outlives the image: a copy"
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


def test_entrypoint_another_container_seeding_first_leaves_no_nested_copy(
    tmp_path: Path, volume: Path
) -> None:
    """Two containers on one volume: the other one renames its copy into place while this
    one is still copying. This one's copy must not end up inside the other's folder."""
    builtin, models = _builtin(tmp_path), volume
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real_cp = shutil.which("cp")
    # A `cp` that first lets "the other container" finish: its model appears in the volume.
    (bin_dir / "cp").write_text(
        f'#!/bin/sh\nmkdir -p "{models}/vgg16_imagenet/1" && echo other > '
        f'"{models}/vgg16_imagenet/1/metadata.json"\nexec {real_cp} "$@"\n'
    )
    (bin_dir / "cp").chmod(0o755)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        VGGSVC_BUILTIN_MODELS_DIR=str(builtin),
        VGGSVC_MODELS_DIR=str(models),
    )
    result = subprocess.run(
        ["sh", str(SCRIPT), "true"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in models.iterdir()) == ["vgg16_imagenet"]  # no temp left
    assert sorted(p.name for p in (models / "vgg16_imagenet").iterdir()) == ["1"]
    assert (models / "vgg16_imagenet" / "1" / "metadata.json").read_text() == "other\n"
    assert "seeded by another container" in result.stderr
