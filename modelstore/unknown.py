"""Beyond the label: the "unknown" score and the explanation, as a version may carry them.

A version fitted with an out-of-distribution scorer has two extra SavedModel
signatures beside `serving_default` (whose output never changes):

- `predict_with_unknown`: uint8 `images` -> `probabilities` [n, classes],
  `unknown_score` [n] (higher = less like the training photos) and `unknown`
  [n] bool (score above the calibrated threshold), from one pass of the base;
- `explain`: uint8 `images` and int32 `class_index` [n] (-1: the predicted
  class) -> `heatmap` [n, h, w] (Grad-CAM on the last convolution of the cut,
  in [0, 1]), the explained `class_index`, the `probabilities` and `unknown_score`.

`metadata.json` records the scorer under `unknown` (`UnknownRecord`): method,
threshold, how it was calibrated. Writers (`training.unknown`) and readers
(`modelstore.loader`, the service's codecs) take every name from here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

UNKNOWN_SIGNATURE = "predict_with_unknown"
# The head-only SavedModel's counterpart (`head/`): cut features -> the same three outputs.
HEAD_UNKNOWN_SIGNATURE = "head_with_unknown"
UNKNOWN_SCORE_NAME = "unknown_score"
UNKNOWN_FLAG_NAME = "unknown"
EXPLAIN_SIGNATURE = "explain"
CLASS_INPUT_NAME = "class_index"
HEATMAP_NAME = "heatmap"
PREDICTED_CLASS = -1  # `class_index` value that asks for the predicted class
UNKNOWN_LABEL = "unknown"  # the label /predict answers with abstain=true for a flagged image


class UnknownRecord(BaseModel):
    """`metadata.json` -> `unknown`: the version's out-of-distribution scorer."""

    model_config = ConfigDict(extra="allow")

    method: str = Field(description="how the score is computed, e.g. knn-cosine")
    representation: str = Field(description="which features the score reads")
    threshold: float = Field(description="scores above it are flagged unknown")
    signature: str = UNKNOWN_SIGNATURE
    calibration: dict[str, Any] = Field(
        default_factory=dict,
        description="target and measured flagged share of the in-distribution validation photos",
    )


def unknown_signature_summary(image_size: int, num_classes: int) -> dict[str, Any]:
    """The two extra signatures as recorded in metadata.json (`-1`: a batch dimension)."""
    images = {"images": {"dtype": "uint8", "shape": [-1, image_size, image_size, 3]}}
    return {
        UNKNOWN_SIGNATURE: {
            "inputs": images,
            "outputs": {
                "probabilities": {"dtype": "float32", "shape": [-1, num_classes]},
                UNKNOWN_SCORE_NAME: {"dtype": "float32", "shape": [-1]},
                UNKNOWN_FLAG_NAME: {"dtype": "bool", "shape": [-1]},
            },
        },
        EXPLAIN_SIGNATURE: {
            "inputs": {**images, CLASS_INPUT_NAME: {"dtype": "int32", "shape": [-1]}},
            "outputs": {
                HEATMAP_NAME: {"dtype": "float32", "shape": [-1, -1, -1]},
                CLASS_INPUT_NAME: {"dtype": "int32", "shape": [-1]},
                "probabilities": {"dtype": "float32", "shape": [-1, num_classes]},
                UNKNOWN_SCORE_NAME: {"dtype": "float32", "shape": [-1]},
            },
        },
    }
