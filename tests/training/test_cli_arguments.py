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


def test_cli_fit_says_what_it_decided_and_lists_unreadable_files_once(
    demo_copy: Path, tmp_path: Path
) -> None:
    from tests.training.conftest import export_rule_model

    # The CLI's log handler writes warnings to stderr too: the listing used to appear twice.
    (demo_copy / "train" / "car" / "notes.txt").write_text("not a picture")
    for _ in range(3):  # versions 1-3; version 1 pinned, so it outlives --keep-versions 2
        export_rule_model(tmp_path / "models", "m", ["car", "truck"], [[0, 0]] * 3, [0, 0])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VGGSVC_FEATURE_CACHE_DIR": str(tmp_path / "c")}
    env["VGGSVC_PINNED_VERSIONS"] = "m:1"
    flags = ["--data", str(demo_copy), "--name", "m", "--models-dir", str(tmp_path / "models")]
    flags += ["--base-weights", "none", "--quiet", "--image-size", "32", "--epochs", "1"]
    flags += ["--keep-versions", "2"]
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
    # What auto chose and why, why training stopped, which epoch's weights were kept.
    assert "auto settings (none weights):" in done.stderr
    assert "base_layer block5_pool, width 256, flip_augment off" in done.stderr
    assert "why: random weights (tests only)" in done.stderr
    assert "ran all 1 epoch(s) (--epochs); kept the weights of epoch 1" in done.stderr
    # The summary's loss is the published log loss, named so.
    assert ", log_loss " in done.stdout and done.stdout.startswith("published m version 4")
    # --keep-versions: the newest two stay, and the pinned one; version 2 is gone.
    assert "m: deleted 2\n" in done.stdout
    assert sorted(p.name for p in (tmp_path / "models" / "m").iterdir() if p.name.isdigit()) == [
        "1",
        "3",
        "4",
    ]


def _data_layouts(tmp_path: Path) -> dict[str, Path]:
    """Folders whose layout `fit` refuses: no classes, one class without valid/, a file."""
    layouts = {"empty": tmp_path / "empty", "no_valid": tmp_path / "no_valid"}
    layouts["empty"].mkdir()
    (layouts["no_valid"] / "train" / "car").mkdir(parents=True)
    (layouts["no_valid"] / "train" / "car" / "a.png").write_bytes(b"x")
    return layouts


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("--name=bad name", "--name: invalid model name 'bad name'"),
        ("--name=a:b", "--name: invalid model name 'a:b'"),
        ("--models-dir=FILE", "is a file; give a folder"),
        ("--models-dir=FILE/sub", "cannot be created"),
        ("--base-layer=block4_pol", "--base-layer 'block4_pol': is not a VGG16 layer"),
        ("--base-weights=imagent", "(did you mean imagenet?)"),
        ("data=empty", "--data: "),
        ("data=no_valid", "--data: "),
        ("--valid-split=0.5", "already has train/ and valid/; drop --valid-split"),
    ],
)
def test_cli_fit_bad_argument_exits_2_before_tensorflow(
    demo_dir: Path, tmp_path: Path, case: str, says: str
) -> None:
    """Each mistake fails at once (no TensorFlow import: seconds saved), exit 2, one line."""
    (tmp_path / "FILE").write_text("not a folder")
    data, flags = demo_dir, ["--name", "m", "--models-dir", str(tmp_path / "models")]
    key, _, value = case.partition("=")
    if key == "data":
        data = _data_layouts(tmp_path)[value]
    else:
        flags += [key, value.replace("FILE", str(tmp_path / "FILE"))]
    result = _probe("training.cli", "fit", "--data", str(data), *flags)
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert says in result.stderr.splitlines()[0], result.stderr
    assert "Traceback" not in result.stderr
    assert "tensorflow imported: False" in result.stderr
    assert not (tmp_path / "models").exists()


def test_cli_fit_help_derives_each_auto_explanation_from_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A help text is the field's description plus what training.defaults says auto picks."""
    import training.defaults
    from training.fit_flags import setting_help

    fit = build_parser()._subparsers._group_actions[0].choices["fit"]  # type: ignore[union-attr]
    helps = {a.dest: a.help or "" for a in fit._actions}
    for name, info in FitConfig.model_fields.items():
        assert str(info.description) in helps[name], name
    assert "auto: 0.2 for hed; 0.0 for imagenet" in helps["label_smoothing"]
    assert "auto: block4_pool for hed" in helps["base_layer"]
    # Change the value auto picks: the help follows, nothing else to edit.
    hed = training.defaults.PROFILES["hed"]
    changed = training.defaults.Profile({**hed.values, "label_smoothing": 0.1}, hed.reason)
    monkeypatch.setitem(training.defaults.PROFILES, "hed", changed)
    assert "auto: 0.1 for hed" in setting_help("label_smoothing")
