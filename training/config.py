"""`FitConfig`: every setting of a `fit` run, with its default and its limits, in one place.

A pydantic model, so a bad value (`--dropout 1.5`, `--min-accuracy 90`, `--epochs 0`)
is refused before any data is read or any model is built: the command line
validates its flags through this class at parse time (training.cli), and
`training.fit.fit()` validates its keyword overrides the same way.

No TensorFlow here: `python -m training fit --help` reads these defaults, and
importing TensorFlow would cost seconds and print its start-up lines first.

Adding a setting: one field here (default, constraints, a comment saying why);
`fit` then gets a flag of the same name (`--new-field`) in training.cli.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

# Base weights and the cut layer stay free text: paths and layer names are checked where
# they are used (training.model), with a message listing what exists.


class FitConfig(BaseModel):
    """Every setting of a run; all of it is recorded in the version's metadata."""

    # extra="forbid": a misspelt keyword override fails instead of being ignored;
    # validate_assignment: `cfg.epochs = 0` is refused like FitConfig(epochs=0).
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # "auto" settings follow the base weights (training.defaults: the measured best for
    # hed, the usual whole-base recipe for ImageNet); the value used and why is recorded.
    image_size: int | Literal["auto"] = "auto"  # multiple of 32 (VGG16's five 2x2 poolings)
    base_weights: str = "auto"  # auto | imagenet | hed | none | PATH
    base_layer: str = "auto"  # where the frozen VGG16 is cut (block5_pool: all of it)
    head: Literal["flatten", "gap"] = "flatten"
    width: int | Literal["auto"] = "auto"  # hidden Dense units (0: none, a linear head)
    dropout: float = Field(0.5, ge=0.0, lt=1.0)  # 1.0 would drop every unit
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-3, gt=0.0)
    patience: int = Field(5, ge=0)  # early stopping on validation loss; best weights restored
    # Train the head towards (1 - e) on the true class and e spread over all classes
    # instead of one-hot targets: a regulariser (auto: 0.2 for hed, 0 otherwise).
    label_smoothing: float | Literal["auto"] = "auto"
    seed: int = 0
    # Only for a data folder without train/ and valid/: the held-out fraction per class.
    valid_split: float | None = Field(None, gt=0.0, lt=1.0)
    flip_augment: bool | Literal["auto"] = "auto"  # also train on mirrored pictures' features
    # The exported graph averages the picture's and its mirror image's probabilities.
    flip_tta: bool | Literal["auto"] = "auto"
    # Start the head from the latest version's when labels and features match (fewer
    # epochs); auto: off (training.defaults says why).
    warm_start: bool | Literal["auto"] = "auto"
    # The frozen base's arithmetic: auto = bf16 on AMX / AVX512-BF16 CPUs, fp16 on Tensor
    # Core GPUs, else fp32. The head trains and the export is saved in fp32 regardless.
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    # None: $VGGSVC_FEATURE_CACHE_DIR or ~/.cache/vgg-transfer/features
    cache_dir: str | None = None
    feature_batch_size: int = Field(32, ge=1)
    min_accuracy: float | None = None  # a fraction in [0, 1]; see _fraction
    promote_if_better: bool = False
    # Where the base runs (training.cluster.engine); the head always trains in this process.
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = None  # None: $RAY_ADDRESS, else a local Ray started in-process
    ray_actors: int | None = Field(None, ge=1)  # base actors; None: one per GPU, else per node

    @field_validator("image_size")
    @classmethod
    def _multiple_of_32(cls, value: int | str) -> int | str:
        if isinstance(value, int) and (value < 32 or value % 32):
            raise PydanticCustomError(
                "multiple_of_32",
                "must be a multiple of 32 (VGG16 halves it five times), e.g. {lower} or {upper}",
                {"lower": max(32, value - value % 32), "upper": value - value % 32 + 32},
            )
        return value

    @field_validator("width")
    @classmethod
    def _units(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise PydanticCustomError("units", "must be 0 (no hidden layer) or more units", {})
        return value

    @field_validator("label_smoothing")
    @classmethod
    def _smoothing(cls, value: float | str) -> float | str:
        if isinstance(value, float) and not 0.0 <= value < 1.0:
            raise PydanticCustomError("smoothing", "must be in [0, 1): 0 for one-hot targets", {})
        return value

    @field_validator("min_accuracy")
    @classmethod
    def _fraction(cls, value: float | None) -> float | None:
        # A percent typed for a fraction (90 for 0.9) would make the gate refuse every
        # model after the whole run; say what was meant instead.
        if value is not None and not 0.0 <= value <= 1.0:
            meant = f" (did you mean {value / 100:g}?)" if 1.0 < value <= 100.0 else ""
            raise PydanticCustomError(
                "fraction", "must be a fraction in [0, 1]: 0.9 for 90 %{meant}", {"meant": meant}
            )
        return value

    def replace(self, **overrides: Any) -> FitConfig:
        """A validated copy with some fields changed (unknown names are an error)."""
        return FitConfig.model_validate({**self.model_dump(), **overrides})
