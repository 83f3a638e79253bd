"""What training publishes, the service serves unchanged: same labels, order, scores, class ids.

These tests import both `training` and `service` (the packages never import each
other; a test may): fit or export here, then ask the real app over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from fastapi.testclient import TestClient

from imaging import load_image
from modelstore.metadata import read_metadata
from service.app import create_app
from service.settings import Settings
from tests.conftest import encode
from tests.training.conftest import export_rule_model
from training.cli import main
from training.imagenet import imagenet_class_index


@contextmanager
def serving(models_dir: Path, default_model: str) -> Iterator[TestClient]:
    settings = Settings(
        models_dir=models_dir,
        default_model=default_model,
        poll_interval_s=0,
        load_in_background=False,  # loaded and warm before the first request
        precision="fp32",  # compared with training's fp32 scores within 1e-5
    )
    with TestClient(create_app(settings)) as client:
        yield client


def training_predict(
    model: Path, files: list[Path], capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    """`python -m training predict` (in process): one JSON object per file."""
    capsys.readouterr()
    args = ["predict", "--model", str(model), *map(str, files), "--precision", "fp32", "--quiet"]
    assert main(args) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def served(client: TestClient, model: str, data: bytes, route: str = "/predict") -> list[dict]:
    response = client.post(f"{route}?model={model}", content=data)
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0]["classes"]


def test_fit_valid_split_three_classes_served_with_the_same_labels(
    demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One flat folder per class (no train/ or valid/), three classes; "bus" sorts first,
    # so its index is 0 although it was added last.
    flat = tmp_path / "flat"
    for label in ("car", "truck"):
        (flat / label).mkdir(parents=True)
        for split in ("train", "valid"):
            for f in (demo_dir / split / label).iterdir():
                (flat / label / f"{split}_{f.name}").write_bytes(f.read_bytes())
    (flat / "bus").mkdir()
    rng = np.random.default_rng(5)
    for i in range(18):
        picture = np.full((32, 32, 3), rng.integers(0, 256, 3), np.uint8)
        picture[8:24] = rng.integers(0, 256, (16, 32, 3))
        (flat / "bus" / f"bus_{i:02d}.png").write_bytes(encode(picture))
    models = tmp_path / "models"
    args = ["fit", "--data", str(flat), "--valid-split", "0.25", "--name", "vehicles"]
    args += ["--models-dir", str(models), "--base-weights", "none", "--image-size", "32"]
    args += ["--epochs", "3", "--batch-size", "16", "--patience", "3", "--quiet"]
    assert main([*args, "--cache-dir", str(tmp_path / "cache")]) == 0

    version = models / "vehicles" / "1"
    # The card and plots sit beside the SavedModel; the service below must serve it anyway.
    assert {"MODEL_CARD.md", "confusion_matrix.png"} <= {p.name for p in version.iterdir()}
    meta = read_metadata(version)
    assert meta.labels == ["bus", "car", "truck"]
    assert meta.training is not None and meta.metrics is not None
    # 18 per class, a quarter held out: round(4.5) = 4 valid, 14 train, for every class.
    assert meta.training["class_counts"] == {
        "train": {"bus": 14, "car": 14, "truck": 14},
        "valid": {"bus": 4, "car": 4, "truck": 4},
    }
    validation = meta.metrics["validation"]
    assert validation["count"] == 12
    assert [sum(row) for row in validation["confusion_matrix"]] == [4, 4, 4]

    files = [flat / "bus" / "bus_00.png", flat / "car" / "valid_car_00000.png"]
    files.append(flat / "truck" / "valid_truck_00000.png")
    lines = training_predict(version, files, capsys)
    graph = tf.saved_model.load(str(version)).signatures["serving_default"]
    with serving(models, "vehicles") as client:
        listed = {m["name"]: m for m in client.get("/models").json()["models"]}
        assert listed["vehicles"]["labels"] == ["bus", "car", "truck"]
        assert listed["vehicles"]["version"] == 1
        for path, line in zip(files, lines, strict=True):
            classes = served(client, "vehicles", path.read_bytes())
            # The exported graph's columns, in metadata's label order, are the truth.
            picture = tf.constant(load_image(path, 32)[None])
            column = graph(images=picture)["probabilities"].numpy()[0]
            assert sorted(c["label"] for c in classes) == ["bus", "car", "truck"]
            for c in classes:
                assert c["class_id"] == meta.labels.index(c["label"])
                assert c["score"] == pytest.approx(column[c["class_id"]], abs=1e-5)
                assert c["score"] == pytest.approx(line["scores"][c["label"]], abs=1e-5)
            assert [c["score"] for c in classes] == sorted(column.tolist(), reverse=True)
            assert (classes[0]["label"], classes[0]["class_id"]) == (
                line["label"],
                line["class_id"],
            )


def test_training_predict_imagenet_class_ids_agree_with_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Five real ImageNet classes, two of them named "crane" (the bird n02012849 and the
    # machine n03126707): only the WordNet id tells them apart. Hand-set weights make
    # a red picture a bird crane and a blue one a machine crane.
    index = imagenet_class_index()
    subset = [index[0], index[134], index[1], index[517], index[2]]
    assert [name for _, name in subset][1::2] == ["crane", "crane"]
    kernel = [[0, 3, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 3, 0]]
    models = tmp_path / "models"
    version = export_rule_model(
        models,
        "vgg16_imagenet",
        [name for _, name in subset],
        kernel,
        [0.5, 0, 0.2, 0, 0.1],
        class_index=subset,
    )
    red, blue = tmp_path / "red.png", tmp_path / "blue.png"
    red.write_bytes(encode(np.full((40, 40, 3), (255, 0, 0), np.uint8)))
    blue.write_bytes(encode(np.full((40, 40, 3), (0, 0, 255), np.uint8)))

    lines = training_predict(version, [red, blue], capsys)
    assert [(line["label"], line["class_id"]) for line in lines] == [
        ("crane", "n02012849"),
        ("crane", "n03126707"),
    ]
    for line in lines:  # every class keeps its own score, duplicate names included
        assert sorted(line["scores"]) == sorted(wnid for wnid, _ in subset)
        assert sum(line["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    with serving(models, "vgg16_imagenet") as client:
        for path, line in zip((red, blue), lines, strict=True):
            for route in ("/predict", "/decode_predictions"):
                classes = served(client, "vgg16_imagenet", path.read_bytes(), route)
                assert (classes[0]["label"], classes[0]["class_id"]) == (
                    line["label"],
                    line["class_id"],
                )
                for c in classes:
                    assert c["score"] == pytest.approx(line["scores"][c["class_id"]], abs=1e-5)
