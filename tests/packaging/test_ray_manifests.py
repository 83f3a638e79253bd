"""The KubeRay RayJob manifests in deploy/ray: their commands are real, their pods share paths."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.deploy_files import REPO, flags_of, module_commands

MANIFESTS = sorted((REPO / "deploy" / "ray").glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def _pods(job: dict[str, Any]) -> list[dict[str, Any]]:
    spec = job["spec"]["rayClusterSpec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [g["template"]["spec"] for g in groups]


def test_ray_manifests_cover_fit_and_predict() -> None:
    subs = {flags_of(module_commands(_load(m)["spec"]["entrypoint"])[0])[1] for m in MANIFESTS}
    assert subs == {"fit", "predict"}


@pytest.mark.parametrize("manifest", MANIFESTS, ids=[m.name for m in MANIFESTS])
def test_ray_manifest_is_a_rayjob_on_the_pinned_ray(manifest: Path) -> None:
    job = _load(manifest)
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    pinned = re.search(r'"ray\[data\]==([\d.]+)\.\*"', (REPO / "pyproject.toml").read_text())
    assert pinned and job["spec"]["rayClusterSpec"]["rayVersion"].startswith(pinned.group(1) + ".")
    assert job["spec"]["shutdownAfterJobFinishes"] is True


@pytest.mark.parametrize("manifest", MANIFESTS, ids=[m.name for m in MANIFESTS])
def test_ray_manifest_entrypoint_flags_are_accepted(manifest: Path) -> None:
    (command,) = module_commands(_load(manifest)["spec"]["entrypoint"])
    module, sub, flags = flags_of(command)
    assert "--engine" in flags and command[command.index("--engine") + 1] == "ray"
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    argv = [sys.executable, "-m", module, str(sub), "--help"]
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not sorted(f for f in flags if f not in result.stdout)


@pytest.mark.parametrize("manifest", MANIFESTS, ids=[m.name for m in MANIFESTS])
def test_ray_manifest_pods_mount_the_same_paths(manifest: Path) -> None:
    # Workers read pictures and models and write features by path: every pod needs them alike.
    mounts = [
        {(m["name"], m["mountPath"]) for c in pod["containers"] for m in c["volumeMounts"]}
        for pod in _pods(_load(manifest))
    ]
    assert len(mounts) >= 2 and all(m == mounts[0] for m in mounts)
    entrypoint = _load(manifest)["spec"]["entrypoint"]
    for path in re.findall(r"\s(/[\w/.-]+)", entrypoint):
        assert any(path.startswith(mount) for _, mount in mounts[0]), path
