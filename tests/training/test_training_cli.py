from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modelstore.layout import list_versions
from training.cli import EXIT_ENGINE, EXIT_WEIGHTS, main

COMMANDS = ["demo-data", "fit", "evaluate", "predict", "export-imagenet"]


@pytest.mark.parametrize("command", COMMANDS)
def test_training_cli_help_for_every_command(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: python -m training" in capsys.readouterr().out


def _fit_args(data: Path, models: Path, weights: str) -> list[str]:
    return [
        "fit",
        "--data",
        str(data),
        "--name",
        "m",
        "--models-dir",
        str(models),
        "--base-weights",
        weights,
        "--image-size",
        "32",
    ]


def test_training_cli_bad_base_weights_exit_code(
    demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Valid data, so the weights are what fails: exit 4, not the data's exit 2.
    missing = tmp_path / "nope.h5"
    assert main(_fit_args(demo_dir, tmp_path / "models", str(missing))) == EXIT_WEIGHTS
    err = capsys.readouterr().err
    assert "error: base weights:" in err and str(missing) in err
    assert list_versions(tmp_path / "models" / "m") == []


def test_training_cli_imagenet_unavailable_exit_code(
    demo_dir: Path, tmp_path: Path, offline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_fit_args(demo_dir, tmp_path / "models", "imagenet")) == EXIT_WEIGHTS
    err = capsys.readouterr().err
    assert "ImageNet VGG16 weights are not in the Keras cache" in err
    assert "--base-weights hed" in err  # says what to do instead
    export = ["export-imagenet", "--models-dir", str(tmp_path / "models")]
    assert main(export) == EXIT_WEIGHTS
    assert main([*export, "--weights", "auto"]) == EXIT_WEIGHTS  # no hed fallback with a top
    assert list_versions(tmp_path / "models" / "m") == []
    assert list_versions(tmp_path / "models" / "vgg16_imagenet") == []


def test_training_cli_ray_engine_without_ray_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code = main(["fit", "--data", str(tmp_path), "--name", "m", "--engine", "ray"])
    assert code == EXIT_ENGINE == 5
    err = capsys.readouterr().err
    assert 'pip install -e ".[ray]"' in err and "--engine local" in err
    assert not (tmp_path / "models").exists()


def test_training_module_freezes_the_heap_before_the_process_exits(tmp_path: Path) -> None:
    # `python -m training` freezes the heap once the command is done, so the
    # interpreter's last collections skip TensorFlow's objects (a second of every
    # retrain's wall time). An exit handler reads the freeze count at shutdown.
    import subprocess

    probe = (
        "import atexit, gc, runpy, sys; "
        "atexit.register(lambda: print('frozen', gc.get_freeze_count())); "
        f"sys.argv = ['training', 'list-models', '--models-dir', {str(tmp_path)!r}]; "
        "runpy.run_module('training', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    frozen = int(done.stdout.strip().splitlines()[-1].split()[1])
    assert frozen > 1000, done.stdout


@pytest.mark.parametrize("quiet", [False, True])
def test_training_cli_download_message_never_on_stdout(
    demo_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    quiet: bool,
) -> None:
    """Keras announces downloads on stdout: the command's stdout is for its result."""
    import keras
    from keras.src.utils import io_utils

    def announce_then_fail(fname: str, origin: str | None = None, **kwargs: object) -> str:
        io_utils.print_msg(f"Downloading data from {origin}")  # what keras.utils.get_file does
        raise Exception("no network (test)")

    monkeypatch.setattr(keras.utils, "get_file", announce_then_fail)
    flags = ["--quiet"] if quiet else []
    try:
        assert main([*_fit_args(demo_dir, tmp_path / "m", "imagenet"), *flags]) == EXIT_WEIGHTS
    finally:
        keras.config.enable_interactive_logging()  # --quiet turns it off for the process
    out, err = capsys.readouterr()
    assert "Downloading data from" not in out
    assert ("Downloading data from" in err) is not quiet
