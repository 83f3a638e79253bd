"""Frozen-base features, computed once per image and cached on disk.

The base is frozen, so its output for a given picture never changes. The cache
key is `sha256(file bytes)` + the base weights' identity + the decoder and
precision + the input size and cut layer (+ whether the picture was flipped), so renaming or moving a file costs nothing,
and adding images to a data set computes features for the new ones only.

Layout: `<cache_dir>/<weights>-<decoder>-<precision>-<size>px-<layer>/<sha[:2]>/<sha>[.flip].npy`.
Default cache dir: `$TRAINING_CACHE_DIR`, else `~/.cache/vgg-transfer/features`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import PIL

from imaging import ImageError, load_image
from imaging.decode import DECODE_VERSION
from training.model import BaseWeights, VGGPreprocess
from training.progress import ProgressBar

CACHE_ENV = "TRAINING_CACHE_DIR"


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "vgg-transfer" / "features"


def weights_identity(base: keras.Model, info: BaseWeights) -> str:
    """The cache identity; random weights are keyed by their values, not just their seed."""
    if info.kind != "none":
        return info.identity
    digest = hashlib.sha256()
    for weight in base.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return f"none-{digest.hexdigest()[:16]}"


@dataclass
class Features:
    """Features for the readable files, in input order, and what could not be read."""

    paths: list[Path]
    values: np.ndarray  # [n, *feature_shape] float32
    flipped: np.ndarray | None  # same shape, of the mirrored pictures (when asked)
    file_sha256: list[str]
    errors: dict[Path, str] = field(default_factory=dict)


class FeatureExtractor:
    """Runs `uint8 pictures -> VGG16 preprocessing -> frozen base`, through the disk cache.

    `images_through_base` counts pictures the base really processed (tests use
    it to prove the cache works).
    """

    def __init__(
        self,
        base: keras.Model,
        info: BaseWeights,
        image_size: int,
        cache_dir: Path | None = None,
        batch_size: int = 32,
        progress: bool = True,
        layer: str = "block5_pool",
        precision: str = "fp32",
    ) -> None:
        self.image_size = image_size
        self.batch_size = batch_size
        self.progress = progress
        identity = weights_identity(base, info)
        # Same weights, same decoding (ours and Pillow's), same precision, same size and cut:
        # same features. `precision` is the effective one the process runs the base in.
        decoding = f"decode{DECODE_VERSION}-pil{PIL.__version__}"
        folder = f"{identity}-{decoding}-{precision}-{image_size}px-{layer}"  # base ends at layer
        self.cache_root = Path(cache_dir or default_cache_dir()) / folder
        inputs = keras.Input(shape=(image_size, image_size, 3), dtype="uint8")
        outputs = base(VGGPreprocess()(inputs), training=False)
        self.model = keras.Model(inputs, outputs, name="feature_extractor")
        self.feature_shape = tuple(int(d) for d in base.output_shape[1:])
        self.images_through_base = 0

    def _cache_file(self, sha: str, flipped: bool) -> Path:
        return self.cache_root / sha[:2] / f"{sha}{'.flip' if flipped else ''}.npy"

    def _store(self, sha: str, flipped: bool, value: np.ndarray) -> None:
        target = self._cache_file(sha, flipped)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a killed run never leaves a truncated cache entry.
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, value)
        os.replace(tmp, target)

    def _load(self, sha: str, flipped: bool) -> np.ndarray | None:
        path = self._cache_file(sha, flipped)
        try:
            value = np.load(path)
        except (OSError, ValueError):
            return None
        return value if value.shape == self.feature_shape else None

    def run_base(self, pictures: np.ndarray) -> np.ndarray:
        """The base on a uint8 batch `[n, s, s, 3]` (no cache)."""
        self.images_through_base += len(pictures)
        return np.asarray(self.model.predict_on_batch(pictures), dtype=np.float32)

    def extract(self, paths: list[Path], flip: bool = False, label: str = "features") -> Features:
        """Features of `paths` (cached or computed in batches); unreadable files are reported."""
        values: dict[Path, np.ndarray] = {}
        flipped: dict[Path, np.ndarray] = {}
        shas: dict[Path, str] = {}
        errors: dict[Path, str] = {}
        pending: list[tuple[Path, str, np.ndarray]] = []
        bar = ProgressBar(len(paths), label, enabled=self.progress)

        def flush() -> None:
            if not pending:
                return
            batch = np.stack([picture for _, _, picture in pending])
            out = self.run_base(batch)
            out_flip = self.run_base(batch[:, :, ::-1, :]) if flip else None
            for i, (path, sha, _) in enumerate(pending):
                values[path] = out[i]
                self._store(sha, False, out[i])
                if out_flip is not None:
                    flipped[path] = out_flip[i]
                    self._store(sha, True, out_flip[i])
            bar.update(len(pending))
            pending.clear()

        for path in paths:
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                errors[path] = f"cannot read: {exc}"
                bar.update()
                continue
            sha = hashlib.sha256(data).hexdigest()
            shas[path] = sha
            cached = self._load(sha, False)
            cached_flip = self._load(sha, True) if flip else None
            if cached is not None and (not flip or cached_flip is not None):
                values[path] = cached
                if cached_flip is not None:
                    flipped[path] = cached_flip
                bar.update()
                continue
            try:
                picture = load_image(data, self.image_size)
            except ImageError as exc:
                errors[path] = str(exc)
                bar.update()
                continue
            pending.append((path, sha, picture))
            if len(pending) >= self.batch_size:
                flush()
        flush()
        bar.close()
        ok = [p for p in paths if p in values]
        empty = np.zeros((0, *self.feature_shape), dtype=np.float32)
        return Features(
            paths=ok,
            values=np.stack([values[p] for p in ok]) if ok else empty,
            flipped=(np.stack([flipped[p] for p in ok]) if ok else empty) if flip else None,
            file_sha256=[shas[p] for p in ok],
            errors=errors,
        )
