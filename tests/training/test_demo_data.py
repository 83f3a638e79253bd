from __future__ import annotations

from pathlib import Path

from PIL import Image

from training.cli import main
from training.demo_data import generate


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_demo_data_writes_expected_tree(tmp_path: Path) -> None:
    assert (
        main(["demo-data", str(tmp_path / "d"), "--train", "3", "--valid", "2", "--size", "32"])
        == 0
    )
    for split, n in (("train", 3), ("valid", 2)):
        for kind in ("car", "truck"):
            files = sorted((tmp_path / "d" / split / kind).iterdir())
            assert len(files) == n
            with Image.open(files[0]) as img:
                assert img.size == (32, 32) and img.mode == "RGB"


def test_demo_data_same_seed_same_files(tmp_path: Path) -> None:
    generate(tmp_path / "a", 3, 2, 32, seed=7)
    generate(tmp_path / "b", 3, 2, 32, seed=7)
    generate(tmp_path / "c", 3, 2, 32, seed=8)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    assert _tree(tmp_path / "a") != _tree(tmp_path / "c")
