"""scripts/vgg16_weights.py: the image build's Keras weights, from weights/ or downloaded."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.deploy_files import REPO


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "vgg16_weights", REPO / "scripts" / "vgg16_weights.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vgg16_weights_takes_a_local_file_with_the_keras_md5(tmp_path: Path) -> None:
    weights = _module()
    local = tmp_path / "weights"
    local.mkdir()
    (local / "notop.h5").write_bytes(b"h5 bytes")
    file = weights.WeightsFile("notop.h5", hashlib.md5(b"h5 bytes").hexdigest())
    # An address nothing answers: the local file must be used without a download.
    origin = weights.place(
        file, local, tmp_path / "keras" / "models", base_url="http://127.0.0.1:9/"
    )
    assert origin == str(local / "notop.h5")
    assert (tmp_path / "keras" / "models" / "notop.h5").read_bytes() == b"h5 bytes"


def test_vgg16_weights_refuses_a_file_with_another_md5(tmp_path: Path) -> None:
    weights = _module()
    local = tmp_path / "weights"
    local.mkdir()
    (local / weights.NOTOP.name).write_bytes(b"truncated")
    with pytest.raises(ValueError, match="MD5"):
        weights.place(weights.NOTOP, local, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []  # nothing half-written left


def test_vgg16_weights_offline_without_files_fails_with_the_offline_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = _module()
    weights.BASE_URL = "http://127.0.0.1:9/"  # nothing listens: as offline as a build gets
    args = [
        "--local",
        str(tmp_path),
        "--notop-dir",
        str(tmp_path / "a"),
        "--top-dir",
        str(tmp_path / "b"),
    ]
    assert weights.main(args) == 1
    assert "VGGSVC_BASE_WEIGHTS=hed" in capsys.readouterr().err
