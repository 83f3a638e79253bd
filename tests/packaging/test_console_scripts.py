"""`pip install -e .` installs the commands `vggsvc` and `vggsvc-train`.

A real editable install (no dependencies: the test environment has them) into a
temporary prefix, so the check does not depend on how this checkout was set up.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {"vggsvc": "service.__main__:main", "vggsvc-train": "training.cli:main"}


@pytest.fixture(scope="module")
def prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("install")
    command = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    command += ["--no-deps", "--prefix", str(root), "-e", str(ROOT)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def _site_packages(prefix: Path) -> Path:
    (found,) = prefix.glob("lib/python*/site-packages")
    return found


def test_console_scripts_entry_points_resolve_to_the_mains(prefix: Path) -> None:
    (dist,) = importlib.metadata.distributions(path=[str(_site_packages(prefix))])
    scripts = {ep.name: ep for ep in dist.entry_points if ep.group == "console_scripts"}
    assert {name: ep.value for name, ep in scripts.items()} == SCRIPTS
    from service.__main__ import main as service_main
    from training.cli import main as training_main

    assert scripts["vggsvc"].load() is service_main
    assert scripts["vggsvc-train"].load() is training_main


def test_console_scripts_run_and_name_themselves(prefix: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in SCRIPTS:
        assert (prefix / "bin" / name).is_file()
    service = subprocess.run(
        [prefix / "bin" / "vggsvc", "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert service.returncode == 0 and service.stdout.startswith("usage: vggsvc ")
    listing = subprocess.run(
        [prefix / "bin" / "vggsvc-train", "list-models", "--models-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.strip() == f"no published model under {tmp_path}"
    bad = subprocess.run(
        [prefix / "bin" / "vggsvc-train", "fit", "--name", "m"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("vggsvc-train fit: error: ")
