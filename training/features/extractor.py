"""Frozen-base features, computed once per image and kept in the feature store.

The base is frozen, so its output for a given picture never changes. Features
live in `training.features.store.FeatureStore`, keyed by `sha256(file bytes)` +
the base weights' identity + the decoding + the precision the base runs in +
the input size + the cut layer (+ whether the picture was flipped), so renaming or moving a file costs nothing,
and adding images to a data set computes features for the new ones only. The
Ray engine (`training.cluster.engine`) fills the same store: features computed by
either engine are hits for the other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import PIL

from imaging.decode import DECODE_VERSION
from training.features.inputs import prepare_file
from training.features.store import FeatureStore, default_cache_dir
from training.model import BaseWeights, feature_model
from training.progress import ProgressBar


def weights_identity(base: keras.Model, info: BaseWeights) -> str:
    """The cache identity; random weights are keyed by their values, not just their seed."""
    if info.kind != "none":
        return info.identity
    digest = hashlib.sha256()
    for weight in base.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return f"none-{digest.hexdigest()[:16]}"


def feature_key_parts(
    base: keras.Model, info: BaseWeights, image_size: int, layer: str, precision: str
) -> dict[str, str]:
    """The store key of a base: same weights, decoding (ours and Pillow's), effective
    precision, size and cut, same features. `base` must end at `layer`. Add a part
    here when something else starts to change the features."""
    return {
        "weights": weights_identity(base, info),
        "decoding": f"decode{DECODE_VERSION}-pil{PIL.__version__}",
        "precision": precision,  # the effective one the base runs in (fp32, bf16, fp16)
        "size": f"{image_size}px",
        "layer": layer,
    }


@dataclass
class Features:
    """Features for the readable files, in input order, and what could not be read."""

    paths: list[Path]
    values: np.ndarray  # [n, *feature_shape] float32
    flipped: np.ndarray | None  # same shape, of the mirrored pictures (when asked)
    file_sha256: list[str]
    errors: dict[Path, str] = field(default_factory=dict)


class FeatureExtractor:
    """Runs `uint8 pictures -> VGG16 preprocessing -> frozen base`, through the feature store.

    `images_through_base` counts pictures the base really processed (tests use
    it to prove the cache works).
    """

    def __init__(
        self,
        base: keras.Model,
        info: BaseWeights,
        image_size: int,
        cache_dir: str | Path | None = None,
        batch_size: int = 32,
        progress: bool = True,
        layer: str = "block5_pool",
        precision: str = "fp32",
    ) -> None:
        self.image_size = image_size
        self.batch_size = batch_size
        self.progress = progress
        self.base = base  # the Ray engine ships its weights to the workers
        self.layer = layer
        self.precision = precision  # effective; Ray's base actors are made to run in it too
        self.feature_shape = tuple(int(d) for d in base.output_shape[1:])
        self.store = FeatureStore(
            cache_dir or default_cache_dir(),
            feature_key_parts(base, info, image_size, layer, precision),
            self.feature_shape,
        )
        self.store.write_key_file()
        self.model = feature_model(base, image_size)
        self.images_through_base = 0

    def run_base(self, pictures: np.ndarray) -> np.ndarray:
        """The base on a uint8 batch `[n, s, s, 3]` (no cache)."""
        self.images_through_base += len(pictures)
        return np.asarray(self.model.predict_on_batch(pictures), dtype=np.float32)

    def extract(
        self, paths: list[Path], flip: bool = False, label: str = "features", keep: bool = True
    ) -> Features:
        """Features of `paths` (cached or computed in batches); unreadable files are reported.

        `keep=False`: only make sure they are in the store; `values` (and `flipped`) come
        back empty, so a split of any size passes through in batches (`store_features`).
        """
        values: dict[Path, np.ndarray] = {}
        flipped: dict[Path, np.ndarray] = {}
        shas: dict[Path, str] = {}
        errors: dict[Path, str] = {}
        stored: list[Path] = []  # in the store now, kept or not
        pending: list[tuple[Path, str, np.ndarray]] = []
        bar = ProgressBar(len(paths), label, enabled=self.progress)

        def flush() -> None:
            if not pending:
                return
            batch = np.stack([picture for _, _, picture in pending])
            out = self.run_base(batch)
            out_flip = self.run_base(batch[:, :, ::-1, :]) if flip else None
            for i, (path, sha, _) in enumerate(pending):
                stored.append(path)
                self.store.put(sha, False, out[i])
                if out_flip is not None:
                    self.store.put(sha, True, out_flip[i])
                if keep:
                    values[path] = out[i]
                    if out_flip is not None:
                        flipped[path] = out_flip[i]
            bar.update(len(pending))
            pending.clear()

        for path in paths:
            item = prepare_file(path, self.store, self.image_size, flip)
            if item.error is not None:
                errors[path] = item.error
                bar.update()
                continue
            assert item.sha is not None
            shas[path] = item.sha
            if item.picture is None:  # a hit: every feature asked for is in the store
                assert item.cached is not None
                stored.append(path)
                if keep:
                    values[path] = item.cached
                    if item.cached_flip is not None:
                        flipped[path] = item.cached_flip
                bar.update()
                continue
            pending.append((path, item.sha, item.picture))
            if len(pending) >= self.batch_size:
                flush()
        flush()
        bar.close()
        done = set(stored)
        ok = [p for p in paths if p in done]
        empty = np.zeros((0, *self.feature_shape), dtype=np.float32)
        return Features(
            paths=ok,
            values=np.stack([values[p] for p in ok]) if ok and keep else empty,
            flipped=(np.stack([flipped[p] for p in ok]) if ok and keep else empty)
            if flip
            else None,
            file_sha256=[shas[p] for p in ok],
            errors=errors,
        )
