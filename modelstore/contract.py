"""The export contract: signature, tensor names and dtypes every published version keeps.

Writers (`training.export`) and readers (`modelstore.loader`, the service's TF
Serving and v2 codecs, clients) take these names from here, never as literals.
"""

from __future__ import annotations

from typing import Any

# `serving_default`: uint8 RGB pixels [batch, size, size, 3] -> float32 probabilities.
SERVING_SIGNATURE = "serving_default"
INPUT_NAME = "images"
INPUT_DTYPE = "uint8"
# `serve_bytes`: encoded images (tf.string [batch]) -> the same probabilities, for TF
# Serving REST clients that send {"b64": ...}.
BYTES_SIGNATURE = "serve_bytes"
BYTES_INPUT_NAME = "image_bytes"
BYTES_INPUT_DTYPE = "string"
OUTPUT_NAME = "probabilities"
OUTPUT_DTYPE = "float32"

SIGNATURES = (SERVING_SIGNATURE, BYTES_SIGNATURE)

# A split version (modelstore.base_identity) also has `features` in the whole SavedModel:
# uint8 `images` -> float32 `features` (preprocessing + frozen base up to its cut layer),
# and a head-only SavedModel whose `serving_default` takes `features` (plus
# `mirror_features` for a head that averages mirror images) -> `probabilities`.
FEATURES_SIGNATURE = "features"
FEATURES_NAME = "features"
MIRROR_FEATURES_NAME = "mirror_features"
INPUT_NAMES = (INPUT_NAME, BYTES_INPUT_NAME)


def signature_summary(image_size: int, num_classes: int) -> dict[str, Any]:
    """Both signatures as recorded in metadata.json (`-1` marks the batch dimension)."""
    outputs = {OUTPUT_NAME: {"dtype": OUTPUT_DTYPE, "shape": [-1, num_classes]}}
    return {
        SERVING_SIGNATURE: {
            "inputs": {
                INPUT_NAME: {"dtype": INPUT_DTYPE, "shape": [-1, image_size, image_size, 3]}
            },
            "outputs": outputs,
        },
        BYTES_SIGNATURE: {
            "inputs": {BYTES_INPUT_NAME: {"dtype": BYTES_INPUT_DTYPE, "shape": [-1]}},
            "outputs": outputs,
        },
    }
