from __future__ import annotations

import socket

import numpy as np
import pytest

from training.model import CONV_LAYERS, build_base


def test_hed_weights_change_all_conv_layers_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("hed weights must load without network access")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    random_base, _ = build_base("none", 32, seed=0)
    hed_base, info = build_base("hed", 32, seed=0)
    assert info.kind == "hed" and len(info.sha256) == 64
    assert len(CONV_LAYERS) == 13
    for name in CONV_LAYERS:
        random_kernel = random_base.get_layer(name).get_weights()[0]
        hed_kernel = hed_base.get_layer(name).get_weights()[0]
        assert hed_kernel.shape == random_kernel.shape
        assert not np.allclose(hed_kernel, random_kernel), name
