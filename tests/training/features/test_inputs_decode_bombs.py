"""A decode bomb in a training folder is skipped and reported like a corrupt file,
through the same `imaging.load_image` the service uses (never decoded, never cached)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.support.bad_inputs import gradient, pillow
from bench.support.decode_bombs import gif_frame_bomb, jpeg_scan_bomb, webp_canvas_bomb
from imaging.decode_cost import MAX_FRAMES
from training.features.inputs import prepare_file
from training.features.store import FeatureStore

BOMBS = {
    "scans.jpg": (jpeg_scan_bomb(300, 100), "progressive scans"),
    "canvas.webp": (webp_canvas_bomb(6000), "6000x6000"),
    "frames.gif": (gif_frame_bomb(MAX_FRAMES + 1), "frames"),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_training_skips_a_decode_bomb_with_its_reason(tmp_path: Path, name: str) -> None:
    data, reason = BOMBS[name]
    path = tmp_path / name
    path.write_bytes(data)
    store = FeatureStore(tmp_path / "cache", {"base": "b"}, (4,))
    prepared = prepare_file(path, store, 32, flip=False)
    assert prepared.picture is None and prepared.error is not None
    assert reason in prepared.error


def test_training_still_reads_an_ordinary_progressive_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "ok.jpg"
    path.write_bytes(pillow(gradient(64, 48), "JPEG", progressive=True))
    prepared = prepare_file(path, FeatureStore(tmp_path / "cache", {"base": "b"}, (4,)), 32, False)
    assert prepared.error is None and prepared.picture is not None
