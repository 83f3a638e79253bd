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


def test_epoch_lines_name_the_smoothed_loss(capsys: pytest.CaptureFixture[str]) -> None:
    lines = EpochLines(epochs=2, smoothed=True)
    lines.on_epoch_begin(0)
    lines.on_epoch_end(0, {"loss": 0.5, "accuracy": 1.0, "val_loss": 0.25})
    line = capsys.readouterr().err
    assert "loss (smoothed) 0.5000 accuracy 1.0000 val_loss (smoothed) 0.2500" in line


@pytest.mark.parametrize(
    ("losses", "max_epochs", "says"),
    [
        (
            [0.9, 0.5, 0.6, 0.7],
            30,
            "stopped after epoch 4 of 30: validation loss did not improve for 2 epoch(s) "
            "(--patience); kept the weights of epoch 2 (lowest val_loss 0.5000)",
        ),
        ([0.9, 0.8], 2, "ran all 2 epoch(s) (--epochs); kept the weights of epoch 2"),
    ],
)
def test_stopping_line_says_why_and_which_epoch(
    losses: list[float], max_epochs: int, says: str
) -> None:
    from training.fit_story import stopping_line

    history = {"loss": [1.0] * len(losses), "val_loss": losses}
    assert says in stopping_line(history, max_epochs, patience=2)
