"""`FitConfig`: every setting of a `fit` run, with its default, in one place.

No TensorFlow here: `python -m training fit --help` reads these defaults, and
importing TensorFlow would cost seconds and print its start-up lines first.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FitConfig:
    """Every setting of a run; all of it is recorded in the version's metadata."""

    image_size: int = 128  # multiple of 32, >= 32
    base_weights: str = "auto"  # auto | imagenet | hed | none | PATH
    base_layer: str = "block5_pool"  # where the frozen VGG16 is cut (block5_pool: all of it)
    head: str = "flatten"  # flatten | gap
    width: int = 256  # hidden Dense units (0: none)
    dropout: float = 0.5
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 5  # early stopping on validation loss; best weights restored
    seed: int = 0
    valid_split: float | None = None  # only for a data folder without train/ and valid/
    flip_augment: bool = False  # also train on cached features of mirrored pictures
    # The frozen base's arithmetic: auto = bf16 on AMX / AVX512-BF16 CPUs, fp16 on Tensor
    # Core GPUs, else fp32. The head trains and the export is saved in fp32 regardless.
    precision: str = "auto"
    cache_dir: str | None = None  # None: $TRAINING_CACHE_DIR or ~/.cache/vgg-transfer/features
    feature_batch_size: int = 32
    min_accuracy: float | None = None
    promote_if_better: bool = False
    # Where the base runs (training.ray_engine); the head always trains in this process.
    engine: str = "local"  # local | ray
    ray_address: str | None = None  # None: $RAY_ADDRESS, else a local Ray started in-process
    ray_actors: int | None = None  # base actors; None: one per GPU, else one per node
