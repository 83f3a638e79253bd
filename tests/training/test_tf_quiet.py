"""TensorFlow's start-up lines are hidden by default and come back with --verbose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modelstore.tf_quiet import drop_tf_log_lines, verbose_from_env
from tests.training.conftest import export_rule_model
from training.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
# Printed twice by every `import tensorflow` of TF 2.21 on this CPU, whatever the log level.
ONEDNN = "oneDNN custom operations are on"

# Real lines as TF 2.21 writes them (CPU), plus the GPU build's factory line.
TF_START_UP = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795459486.808369   23194 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results.
I0000 00:00:1795459486.998603   23194 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
E0000 00:00:1733324343.117155   48241 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to register factory for plugin cuDNN when one has already been registered
"""


def test_tf_quiet_drops_tensorflow_records_and_keeps_python_output() -> None:
    python = (
        "/x/y.py:3: UserWarning: kept\n"
        "  warnings.warn('kept')\n"
        "Traceback (most recent call last):\n"
        "ValueError: kept too\n"
    )
    assert drop_tf_log_lines(TF_START_UP) == ""
    assert drop_tf_log_lines(TF_START_UP + python) == python
    assert drop_tf_log_lines("plain line\n" + TF_START_UP) == "plain line\n"
    fatal = "F0000 00:00:1.2   1 x.cc:1] Check failed\n"
    assert drop_tf_log_lines(fatal) == fatal  # a crash's reason is never hidden


def test_tf_quiet_verbose_env_sets_the_flags_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert verbose_from_env({"VGGSVC_VERBOSE": "1"}) and verbose_from_env({"VGGSVC_VERBOSE": "On"})
    assert not verbose_from_env({}) and not verbose_from_env({"VGGSVC_VERBOSE": "0"})
    monkeypatch.setenv("VGGSVC_VERBOSE", "true")
    args = build_parser().parse_args(["predict", "--model", "m", "x.png"])
    assert args.verbose is True


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """`python -m training predict` of one picture with a tiny model: the command line."""
    root = tmp_path_factory.mktemp("quiet")
    model = export_rule_model(root / "models", "m", ["a", "b"], [[1, 0]] * 3, [0, 0])
    picture = root / "red.png"
    Image.fromarray(np.full((32, 32, 3), (200, 0, 0), np.uint8)).save(picture)
    return [
        sys.executable,
        "-m",
        "training",
        "predict",
        "--quiet",
        "--model",
        str(model),
        str(picture),
    ]


def _stderr(argv: list[str], **env: str) -> str:
    result = subprocess.run(
        argv,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert '"label": "a"' in result.stdout  # it did run
    return result.stderr


def test_tf_quiet_tiny_run_has_no_tensorflow_lines_by_default(tiny_run: list[str]) -> None:
    err = _stderr(tiny_run)
    assert ONEDNN not in err and "absl::InitializeLog" not in err, err
    assert err.strip().splitlines() == ["scored 1 file(s), 0 unreadable"]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_tf_quiet_tiny_run_verbose_shows_tensorflow_lines(tiny_run: list[str], how: str) -> None:
    err = (
        _stderr([*tiny_run, "--verbose"])
        if how == "flag"
        else _stderr(tiny_run, VGGSVC_VERBOSE="1")
    )
    assert ONEDNN in err
