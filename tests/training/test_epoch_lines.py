"""fit's epoch lines: one whole line per epoch on stderr, with the seconds it took."""

from __future__ import annotations

import pytest

import training.fit
from training.fit import EpochLines


def test_epoch_lines_contain_seconds_per_epoch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    now = [100.0]
    monkeypatch.setattr(training.fit.time, "monotonic", lambda: now[0])
    lines = EpochLines(epochs=30)
    for epoch, seconds in enumerate((2.5, 12.0)):
        lines.on_epoch_begin(epoch)
        now[0] += seconds
        lines.on_epoch_end(epoch, {"loss": 0.5, "val_loss": 0.25, "learning_rate": 0.001})
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines() == [
        "epoch 1/30 2.50s loss 0.5000 val_loss 0.2500",
        "epoch 2/30 12.00s loss 0.5000 val_loss 0.2500",
    ]
