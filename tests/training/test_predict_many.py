"""`training predict --model a --model b`: every model per file, one base pass per base."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.support.harness import export_tiny
from modelstore.split_loader import LoadedBase
from tests.conftest import encode
from training.cli import main


def run_predict(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict]:  # type: ignore[type-arg]
    assert main(["predict", *args, "--precision", "fp32", "--quiet"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_predict_several_models_equals_one_model_runs_with_one_base_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    a = export_tiny(models, "a", ["car", "van"], 32, seed=7, head_seed=1)
    b = export_tiny(models, "b", ["x", "y", "z"], 32, seed=7, head_seed=2, flip_tta=True)
    c = export_tiny(models, "c", ["p", "q"], 32, seed=8)  # another base
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        (photos / f"{i}.png").write_bytes(encode(rng.integers(0, 256, (30, 40, 3), np.uint8)))
    (photos / "broken.jpg").write_bytes(b"not a picture")

    base_calls: list[int] = []
    real = LoadedBase.features

    def counted(self: LoadedBase, images: np.ndarray) -> np.ndarray:
        base_calls.append(len(images))
        return real(self, images)

    monkeypatch.setattr(LoadedBase, "features", counted)
    together = run_predict(
        ["--model", str(a), "--model", str(b), "--model", str(c), str(photos)], capsys
    )
    # One batch: one pass of the shared base (3 pictures and their mirror images for b),
    # one of c's base.
    assert sorted(base_calls) == [3, 6]
    assert [line["path"] for line in together] == [str(photos / f"{i}.png") for i in range(3)] + [
        str(photos / "broken.jpg")
    ]
    assert "error" in together[-1]
    for index, model in enumerate((a, b, c)):
        alone = run_predict(["--model", str(model), str(photos)], capsys)
        for line, single in zip(together[:3], alone[:3], strict=True):
            answer = line["models"][index]
            assert (answer["model"], answer["version"]) == (model.parent.name, 1)
            assert answer["label"] == single["label"]
            got, want = answer["scores"], single["scores"]
            assert got.keys() == want.keys()
            assert max(abs(got[k] - want[k]) for k in got) <= 1e-5
