"""What identifies a version's frozen base, and how its head runs alone (no TensorFlow here).

Every classifier this product trains is a small head on a frozen VGG16 base. Two
versions whose bases are identical -- same weights as used, cut at the same
layer, same input size, same preprocessing -- compute the same features for
the same picture, so a server may run that base once and each head on its
output. `metadata.json` records:

- `base_identity`: the base's exact identity. `weights_sha256` hashes the base's
  own weight arrays (fp32, every layer up to the cut, in order), not a file: two
  exports from the same weights file cut at the same layer agree, whatever
  precision they are later run in;
- `head`: where the head-only artifact is (`head/`, a tiny SavedModel taking
  `features`) and whether it averages each picture with its mirror image.

A version without both (older exports, or a model that cannot be split, like
the full ImageNet VGG16) is served whole. The complete SavedModel stays in the
version folder either way, so TensorFlow Serving still serves every version alone.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field

# keras.applications.vgg16.preprocess_input ("caffe" mode): RGB -> BGR, ImageNet means
# subtracted, no scaling. The one preprocessing every export uses today.
VGG16_PREPROCESSING = "vgg16-caffe-bgr-mean"
HEAD_DIR = "head"  # the head-only SavedModel, inside the version folder


class BaseIdentity(BaseModel):
    """Equal identities compute equal features: such versions may share one loaded base."""

    model_config = ConfigDict(extra="allow", frozen=True)

    weights_sha256: str = Field(
        min_length=64,
        max_length=64,
        description="sha256 of the base's fp32 weight arrays as used, up to the cut layer",
    )
    layer: str = Field(min_length=1, description="the VGG16 layer the base is cut at")
    image_size: int = Field(ge=1, description="input height and width in pixels")
    preprocessing: str = Field(description="the pixel preprocessing inside the base")
    feature_shape: list[int] = Field(min_length=1, description="one picture's features")

    @property
    def key(self) -> str:
        """A short stable name of the identity (metrics label, /models, logs)."""
        fields = self.model_dump(
            include={"weights_sha256", "layer", "image_size", "preprocessing", "feature_shape"}
        )
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


class HeadRecord(BaseModel):
    """How to run the version's head alone on its base's features."""

    model_config = ConfigDict(extra="allow")

    # A folder inside the version, never a path out of it.
    path: str = Field(
        HEAD_DIR,
        pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$",
        description="the head-only SavedModel: a folder inside the version folder",
    )
    mirror: bool = Field(
        False,
        description="the head also takes each picture's mirror-image features and "
        "averages the two answers (test-time flip augmentation)",
    )
    unknown_signature: str | None = Field(
        None,
        description="the head SavedModel's signature that also answers the unknown score "
        "(features -> probabilities, unknown_score, unknown); None: the head has no scorer",
    )


def weights_digest(arrays: list[tuple[str, object]]) -> str:
    """sha256 over `(layer name, fp32 array)` pairs, in order (shape included).

    Arrays are anything numpy can turn into float32; the caller passes the base's
    layers in order. Lives here, not in training, so that any writer hashes alike.
    """
    import numpy as np  # numpy only: this module stays importable without TensorFlow

    digest = hashlib.sha256()
    for name, value in arrays:
        array = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        digest.update(f"{name}:{list(array.shape)};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
