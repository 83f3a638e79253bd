from __future__ import annotations

import pytest

from training.cli import main

COMMANDS = ["demo-data", "fit", "evaluate", "predict", "export-imagenet"]


@pytest.mark.parametrize("command", COMMANDS)
def test_training_cli_help_for_every_command(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: python -m training" in capsys.readouterr().out


def test_training_cli_bad_base_weights_exit_code(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["fit", "--data", str(tmp_path), "--name", "m", "--base-weights", "nope.h5"])
    assert code in (2, 4)
    assert "error:" in capsys.readouterr().err
