"""The command lines check their arguments before any work, and never import TensorFlow for it.

Each case runs in a fresh interpreter, so "TensorFlow was never imported" is a fact about
the process (the test process itself has imported it long ago).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.cli import EXIT_BAD_INPUT, build_parser, fit_config
from training.config import FitConfig

ROOT = Path(__file__).resolve().parents[2]

# Runs a program's main() with argv, then reports on stderr whether TensorFlow got imported.
PROBE = """
import importlib, sys
module, argv = sys.argv[1], sys.argv[2:]
try:
    code = importlib.import_module(module).main(argv)
except SystemExit as exc:
    code = exc.code
print("tensorflow imported:", "tensorflow" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def _probe(module: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "1000"}
    return subprocess.run(
        [sys.executable, "-c", PROBE, module, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


COMMANDS = ["demo-data", "fit", "evaluate", "predict", "export-imagenet", "list-models"]


@pytest.mark.parametrize(
    ("module", "argv"),
    [("training.cli", [command, "--help"]) for command in COMMANDS]
    + [("training.cli", ["--help"]), ("service.__main__", ["--help"])],
)
def test_cli_help_does_not_import_tensorflow(module: str, argv: list[str]) -> None:
    result = _probe(module, *argv)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    assert "tensorflow imported: False" in result.stderr


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--dropout", "1.5", "less than 1"),
        ("--min-accuracy", "90", "a fraction in [0, 1]: 0.9 for 90 % (did you mean 0.9?)"),
        ("--epochs", "0", "greater than or equal to 1"),
        ("--image-size", "100", "multiple of 32"),
        ("--learning-rate", "0", "greater than 0"),
        ("--valid-split", "1", "less than 1"),
        ("--batch-size", "0", "greater than or equal to 1"),
    ],
)
def test_cli_fit_bad_value_exits_2_naming_the_flag(
    tmp_path: Path, flag: str, value: str, says: str
) -> None:
    result = _probe("training.cli", "fit", "--data", str(tmp_path), "--name", "m", flag, value)
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"python -m training fit: error: {flag} ")
    assert says in first
    assert "usage:" not in result.stderr  # the message, not the whole usage block first
    assert "tensorflow imported: False" in result.stderr
    assert not (tmp_path / "models").exists() and not Path(ROOT / "models" / "m").exists()


def test_cli_fit_missing_data_folder_exits_2_naming_the_flag(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-data"
    result = _probe("training.cli", "fit", "--data", str(missing), "--name", "m")
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert f"error: argument --data: no such folder: {missing}" in result.stderr
    assert "usage:" not in result.stderr
    assert "tensorflow imported: False" in result.stderr


def test_cli_fit_every_config_field_is_a_flag() -> None:
    """A new FitConfig field needs its flag (named after it) for the error messages to hold."""
    fit = build_parser()._subparsers._group_actions[0].choices["fit"]  # type: ignore[union-attr]
    flags = {opt for action in fit._actions for opt in action.option_strings}
    missing = [n for n in FitConfig.model_fields if "--" + n.replace("_", "-") not in flags]
    assert missing == []


def test_cli_fit_config_carries_the_flags(tmp_path: Path) -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            "fit",
            "--data",
            str(tmp_path),
            "--name",
            "m",
            "--dropout",
            "0.25",
            "--min-accuracy",
            "0.9",
        ]
    )
    config = fit_config(args, argparse.ArgumentParser())
    assert (config.dropout, config.min_accuracy, config.epochs) == (0.25, 0.9, FitConfig().epochs)


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    from service.__main__ import build_parser as service_parser

    root = build_parser()
    commands = root._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    return [*((f"training {n}", p) for n, p in commands.items()), ("service", service_parser())]


@pytest.mark.parametrize(("where", "parser"), _parsers(), ids=lambda v: str(v)[:20])
def test_cli_every_flag_shows_its_default(where: str, parser: argparse.ArgumentParser) -> None:
    formatter = parser._get_formatter()
    missing = []
    for action in parser._actions:
        if not action.option_strings or action.required or action.dest == "help":
            continue
        text = formatter._expand_help(action) if action.help else ""
        if "default" not in text:
            missing.append(action.option_strings[-1])
    assert missing == [], f"{where}: no default shown for {missing}"


def test_cli_fit_help_has_examples_and_exit_codes() -> None:
    result = _probe("training.cli", "fit", "--help")
    assert "examples:\n  # the synthetic demo data set" in result.stdout
    assert "exit codes:" in result.stdout
    for code in (
        "0  ok",
        "2  bad arguments",
        "3  the quality gate",
        "4  base weights",
        "5  the Ray",
    ):
        assert f"\n  {code}" in result.stdout


def test_cli_fit_lists_unreadable_files_once(demo_copy: Path, tmp_path: Path) -> None:
    # The CLI's log handler writes warnings to stderr too: the listing used to appear twice.
    (demo_copy / "train" / "car" / "notes.txt").write_text("not a picture")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VGGSVC_FEATURE_CACHE_DIR": str(tmp_path / "c")}
    flags = ["--data", str(demo_copy), "--name", "m", "--models-dir", str(tmp_path / "models")]
    flags += ["--base-weights", "none", "--quiet", "--image-size", "32", "--epochs", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "training", "fit", *flags, "--precision", "fp32"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("notes.txt") == 1, done.stderr
    assert "skipped 1 unreadable file(s)" in done.stderr
