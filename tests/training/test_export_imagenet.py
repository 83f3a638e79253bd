from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from training.cli import main


def test_export_imagenet_weights_none_has_1000_classes(tmp_path: Path) -> None:
    assert main(["export-imagenet", "--models-dir", str(tmp_path), "--weights", "none"]) == 0
    version_dir = tmp_path / "vgg16_imagenet" / "1"
    meta = json.loads((version_dir / "metadata.json").read_text())
    assert meta["image_size"] == 224 and meta["base_weights"]["kind"] == "none"
    index = meta["class_index"]
    assert len(index) == 1000 and len(meta["labels"]) == 1000
    assert all(re.fullmatch(r"n\d{8}", wnid) for wnid, _ in index)
    assert index[0] == ["n01440764", "tench"]
    assert [name for _, name in index] == meta["labels"]
    loaded = tf.saved_model.load(str(version_dir))
    out = loaded.signatures["serving_default"](images=tf.zeros([1, 224, 224, 3], tf.uint8))
    probs = out["probabilities"].numpy()
    assert probs.shape == (1, 1000)
    np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-4)
