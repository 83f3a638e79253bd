"""Where the frozen base runs: the engine contract, the local engine and the factory.

`fit` asks `open_engine(name)` for an engine and never imports a particular one:
`local` runs the base in this process (`training.features.extractor`), `ray` on a
cluster (`training.cluster.engine`, imported only when asked, since Ray is an
optional extra). Both fill the same feature store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from modelstore.runtime import Precision
from training.features.extractor import FeatureExtractor, Features
from training.features.stream import StoredFeatures


class FeatureEngine(Protocol):
    """Where the base runs: `local` (this process) or `ray` (a cluster); same store."""

    name: str

    def extract(
        self, extractor: FeatureExtractor, paths: list[Path], flip: bool = ..., label: str = ...
    ) -> Features: ...

    def extract_splits(
        self,
        extractor: FeatureExtractor,
        splits: dict[str, tuple[list[Path], bool]],
        label: str = ...,
    ) -> dict[str, Features]: ...

    def store_splits(
        self,
        extractor: FeatureExtractor,
        splits: dict[str, tuple[list[Path], bool]],
        label: str = ...,
    ) -> dict[str, StoredFeatures]:
        """Like `extract_splits`, leaving the features in the store (none gathered)."""
        ...

    def describe(self) -> dict[str, Any]: ...

    def feature_precision(self, requested: str, driver: Precision) -> Precision:
        """The precision the base runs in, given `--precision` and this process's runtime."""
        ...


class LocalFeatureEngine:
    """The base in this process, in batches (`FeatureExtractor.extract`)."""

    name = "local"

    def extract(
        self,
        extractor: FeatureExtractor,
        paths: list[Path],
        flip: bool = False,
        label: str = "features",
    ) -> Features:
        return extractor.extract(paths, flip=flip, label=label)

    def extract_splits(
        self,
        extractor: FeatureExtractor,
        splits: dict[str, tuple[list[Path], bool]],
        label: str = "features",
    ) -> dict[str, Features]:
        """`{name: (paths, flip)}` -> `{name: Features}`, one progress bar per split."""
        return {
            name: extractor.extract(paths, flip=flip, label=f"{name} {label}")
            for name, (paths, flip) in splits.items()
        }

    def store_splits(
        self,
        extractor: FeatureExtractor,
        splits: dict[str, tuple[list[Path], bool]],
        label: str = "features",
    ) -> dict[str, StoredFeatures]:
        """`{name: (paths, flip)}` -> `{name: StoredFeatures}`: computed into the store, not kept."""
        out = {}
        for name, (paths, flip) in splits.items():
            feats = extractor.extract(paths, flip=flip, label=f"{name} {label}", keep=False)
            out[name] = StoredFeatures(
                extractor.store, feats.paths, feats.file_sha256, flip, feats.errors
            )
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "nodes": 1}

    def feature_precision(self, requested: str, driver: Precision) -> Precision:
        """The base runs in this process: the precision its runtime resolved."""
        return driver


ENGINES = ("local", "ray")


def open_engine(
    name: str,
    ray_address: str | None = None,
    ray_actors: int | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> FeatureEngine:
    """The engine called `name`; `ray` connects at once, so a bad address fails before any work."""
    if name == "local":
        return LocalFeatureEngine()
    if name == "ray":
        from training.cluster.engine import RayFeatureEngine  # Ray is an optional extra

        return RayFeatureEngine(ray_address, ray_actors, batch_size, progress)
    raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
