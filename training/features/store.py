"""The content-addressed feature store shared by the local and the Ray engine.

A frozen base's output for a picture never changes, so it is stored once under
a key made of the picture's bytes and of everything that shapes the features:

    <root>/<namespace>/<sha256[:2]>/<sha256>[.flip].npy

- `root`: a local folder or a pyarrow filesystem URI (`s3://bucket/features`);
  see `training.features.storage` (object storage is tested here on local paths only).
- `namespace`: the key parts joined with `-`, in order, e.g.
  `hed-0123abcd-decode1-pil12.0-128px-block5_pool`. The parts are a dict
  (`weights`, `decoding`, `size`, `layer`) so a new one (e.g. `precision`) is
  one more entry; `key.json` in the namespace folder records them. A new part
  whose value is the old behaviour may be left out to keep existing stores valid.
- one `.npy` file per picture (and per mirrored picture), written to a
  temporary name and renamed: any number of writers on any number of machines
  can fill the store at once, a reader sees a whole entry or none, and two
  writers of one key leave one whole entry (same key, same features).

The layout is the one the local cache always had, so existing caches stay hits.
Default root: `$VGGSVC_FEATURE_CACHE_DIR`, else `~/.cache/vgg-transfer/features`
(`$TRAINING_CACHE_DIR`, its old name, still works for one release, with a warning).
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from training.disk_space import disk_full_message, is_disk_full
from training.features.storage import Storage

log = logging.getLogger(__name__)

CACHE_ENV = "VGGSVC_FEATURE_CACHE_DIR"
# The name before the VGGSVC_* family; read, with a warning, until the next release.
OLD_CACHE_ENV = "TRAINING_CACHE_DIR"
KEY_FILE = "key.json"


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if not env and os.environ.get(OLD_CACHE_ENV):
        # FutureWarning, not DeprecationWarning: Python shows it to the user by default.
        warnings.warn(
            f"{OLD_CACHE_ENV} is deprecated and stops working in the next release: "
            f"set {CACHE_ENV} instead",
            FutureWarning,
            stacklevel=2,
        )
        env = os.environ[OLD_CACHE_ENV]
    return Path(env) if env else Path.home() / ".cache" / "vgg-transfer" / "features"


def namespace_of(key_parts: dict[str, str]) -> str:
    """The folder name for a set of key parts (their values, in order)."""
    for name, value in key_parts.items():
        if not value or "/" in value:
            raise ValueError(f"feature store key part {name}={value!r} must be a non-empty name")
    return "-".join(key_parts.values())


class FeatureStore:
    """Get and put one feature array per `(file sha256, mirrored?)` under fixed key parts.

    Picklable (it holds only strings and a shape), so Ray workers get a copy and
    write to the same place.
    """

    def __init__(
        self, root: str | Path, key_parts: dict[str, str], feature_shape: tuple[int, ...]
    ) -> None:
        self.root = str(root)
        self.key_parts = dict(key_parts)
        self.namespace = namespace_of(self.key_parts)
        self.feature_shape = tuple(int(d) for d in feature_shape)

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "_storage"}

    @property
    def storage(self) -> Storage:
        # Made on first use in each process: pyarrow filesystems are not shipped around.
        if "_storage" not in self.__dict__:
            self.__dict__["_storage"] = Storage(self.root)
        return self.__dict__["_storage"]

    def location(self, sha: str, flipped: bool = False) -> str:
        return self.storage.path(self.namespace, sha[:2], f"{sha}{'.flip' if flipped else ''}.npy")

    def get(self, sha: str, flipped: bool = False) -> np.ndarray | None:
        """The stored features, or None when absent or not a whole array of the right shape."""
        try:
            data = self.storage.read(self.location(sha, flipped))
            header = self._header()
            if len(data) == self.entry_size() and data.startswith(header):
                # What `put` writes: the values follow a known header. Parsing the header
                # (np.load) costs 5x the read itself, and training reads every entry per epoch.
                flat = np.frombuffer(data, dtype=np.float32, offset=len(header))
                return flat.reshape(self.feature_shape)
            value = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        return value if value.shape == self.feature_shape else None

    def put(self, sha: str, flipped: bool, value: np.ndarray) -> None:
        value = np.asarray(value, dtype=np.float32)
        if value.shape != self.feature_shape:
            raise ValueError(f"features of shape {value.shape}, store holds {self.feature_shape}")
        if self.__dict__.get("_full"):
            return
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        self._write(self.location(sha, flipped), buf.getvalue())

    @property
    def full(self) -> bool:
        """Whether a write found the disk full (in this process), so caching stopped."""
        return bool(self.__dict__.get("_full"))

    def _write(self, where: str, data: bytes) -> None:
        """Write, unless the cache's disk is full: then warn once and stop caching.

        The cache only saves time; a full disk under it must not fail the job
        (the features are still computed and used, just not kept).
        """
        try:
            self.storage.write_atomic(where, data)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self.__dict__["_full"] = True
            log.warning(
                "the feature cache is full (%s); going on without caching: %s",
                disk_full_message(exc, self.root),
                self.root,
            )

    def _header(self) -> bytes:
        """The `.npy` header `put` writes before the values (the same for every entry)."""
        if "_header_bytes" not in self.__dict__:
            buf = io.BytesIO()
            np.save(buf, np.zeros(self.feature_shape, np.float32), allow_pickle=False)
            values = 4 * int(np.prod(self.feature_shape))
            self.__dict__["_header_bytes"] = buf.getvalue()[:-values] if values else buf.getvalue()
        return bytes(self.__dict__["_header_bytes"])

    def entry_size(self) -> int:
        """The bytes of one whole stored entry (`.npy` header and float32 values)."""
        return len(self._header()) + 4 * int(np.prod(self.feature_shape))

    def has_all(self, sha: str, flip: bool) -> bool:
        """Whether the features (and, with `flip`, the mirrored ones) are stored and whole."""
        return self.get(sha) is not None and (not flip or self.get(sha, True) is not None)

    def write_key_file(self) -> None:
        """`key.json`: what the namespace folder holds, for people and tools (idempotent)."""
        where = self.storage.path(self.namespace, KEY_FILE)
        if not self.storage.exists(where):
            text = json.dumps({"parts": self.key_parts, "shape": self.feature_shape}, indent=2)
            self._write(where, text.encode())
