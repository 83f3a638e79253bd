"""A full disk during training: one line and exit 6, a cache that stops caching, and a
version published before the disk filled that counts as published (fake ENOSPC errors)."""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import training.commands
from bench.support.bad_inputs import gradient, pillow
from modelstore.layout import LAST_PUBLISHED_FILE, list_versions, reserve_version
from modelstore.metadata import METADATA_FILE
from training.cli import EXIT_DISK_FULL, main
from training.disk_space import disk_full_message, is_disk_full
from training.features.storage import Storage
from training.features.store import FeatureStore


def enospc(path: str = "") -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", path or None)


def test_fit_on_a_full_disk_is_one_line_and_exit_6(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "models" / "m" / ".tmp-draft" / "variables" / "variables.data"

    def full(args: Any) -> int:
        raise RuntimeError("export failed") from enospc(str(target))

    monkeypatch.setattr(training.commands, "fit", full)
    data = tmp_path / "data"
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
        for i in range(6):  # enough for the checks made before any work
            (data / label / f"{i}.png").write_bytes(pillow(gradient(8 + i, 8), "PNG"))
    args = ["fit", "--data", str(data), "--name", "m", "--models-dir", str(tmp_path / "models")]
    args += ["--valid-split", "0.5"]
    code = main(args)  # not --quiet: it turns Keras logging off for the whole process
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_DISK_FULL, err
    assert len(err) == 1 and "Traceback" not in err[0]
    assert err[0].startswith("error: no space left on device writing ")
    assert str(target) in err[0] and "free there" in err[0]


def test_other_errors_are_not_called_a_full_disk() -> None:
    assert is_disk_full(enospc())
    assert is_disk_full(RuntimeError("write: No space left on device"))  # TensorFlow's words
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert "free there" in disk_full_message(enospc(), "/")


def test_full_feature_cache_warns_once_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    writes: list[str] = []

    def full(self: Storage, path: str, data: bytes) -> None:
        writes.append(path)
        raise enospc(path)

    monkeypatch.setattr(Storage, "write_atomic", full)
    store = FeatureStore(tmp_path / "cache", {"base": "b"}, (4,))
    with caplog.at_level(logging.WARNING):
        for i in range(5):
            store.put(f"{i:02d}" * 32, False, np.zeros(4, np.float32))  # no exception
    assert len(writes) == 1  # after the first failure, caching stops
    warnings = [r for r in caplog.records if "feature cache is full" in r.getMessage()]
    assert len(warnings) == 1
    assert store.get("00" * 32) is None


def test_cache_errors_other_than_a_full_disk_still_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(self: Storage, path: str, data: bytes) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(Storage, "write_atomic", denied)
    store = FeatureStore(tmp_path / "cache", {"base": "b"}, (4,))
    with pytest.raises(PermissionError):
        store.put("ab" * 32, False, np.zeros(4, np.float32))


def test_version_published_before_the_disk_filled_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_write_text = Path.write_text

    def full_after_rename(self: Path, text: str, *args: Any, **kwargs: Any) -> int:
        if self.name == LAST_PUBLISHED_FILE:
            raise enospc(str(self))
        return real_write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_after_rename)
    with caplog.at_level(logging.WARNING), reserve_version(tmp_path, "m") as draft:
        real_write_text(draft.path / METADATA_FILE, "{}")
    assert list_versions(tmp_path / "m") == [1]
    assert (tmp_path / "m" / "1" / METADATA_FILE).is_file()
    assert "is published" in caplog.text
