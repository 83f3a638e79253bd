from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.support.bad_inputs import tiff_strips
from training.cli import main
from training.fit import FitResult


def test_batch_predict_one_line_per_file_with_errors(
    fitted: FitResult, demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    rational = tmp_path / "rational.tif"  # StripOffsets typed RATIONAL: TypeError in Pillow
    rational.write_bytes(tiff_strips((5, (130, 1))))
    folder = demo_dir / "valid" / "car"
    code = main(
        [
            "predict",
            "--model",
            str(fitted.path),
            str(folder),
            str(broken),
            str(rational),
            "--batch-size",
            "4",
            "--precision",
            "fp32",  # probabilities sum to 1 within 1e-5 in fp32 (bf16: within ~1e-2)
            "--quiet",
        ]
    )
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 8
    errors = [line for line in lines if "error" in line]
    assert [e["path"] for e in errors] == [str(broken), str(rational)]
    assert "corrupt" in errors[1]["error"]
    scored = [line for line in lines if "error" not in line]
    assert {Path(s["path"]).parent for s in scored} == {folder}
    for s in scored:
        assert s["label"] in ("car", "truck")
        assert sum(s["scores"].values()) == pytest.approx(1.0, abs=1e-5)
