"""Several published versions scored together: one base pass per base identity.

For batch scoring with many models (`training predict --model a --model b`):
versions whose metadata records the same base identity run that base once per
batch and each head on its features (`modelstore.split_loader`); any other
version (exported whole, or `share_base=False`) runs its complete SavedModel.

    models = load_model_set([Path("models/a"), Path("models/b")], runtime)
    probs = models.predict({size: pictures for size in models.image_sizes})
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelstore.layout import resolve_model_path
from modelstore.loader import PublishedModel, load_published
from modelstore.metadata import read_metadata
from modelstore.runtime import Runtime
from modelstore.split_loader import (
    LoadedBase,
    PublishedHead,
    load_base,
    load_head,
    runtime_split_refusal,
)


@dataclass
class ModelSet:
    members: list[PublishedModel | PublishedHead]  # in the order asked
    bases: dict[str, LoadedBase]  # by identity key, one per identity among the heads

    @property
    def image_sizes(self) -> list[int]:
        return sorted({m.image_size for m in self.members})

    def predict(self, images: dict[int, np.ndarray]) -> list[np.ndarray]:
        """Each member's probabilities for `images[member.image_size]` (uint8), in order."""
        out: list[np.ndarray] = []
        features: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for member in self.members:
            pictures = images[member.image_size]
            if isinstance(member, PublishedModel):
                out.append(member.predict(pictures))
                continue
            key = member.identity.key
            if key not in features:
                features[key] = self._base_pass(key, pictures)
            plain, mirrored = features[key]
            out.append(member.predict(plain, mirrored if member.mirror else None))
        return out

    def _base_pass(self, key: str, pictures: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """One base call for the pictures (and their mirror images when a head needs them)."""
        mirror = any(
            isinstance(m, PublishedHead) and m.identity.key == key and m.mirror
            for m in self.members
        )
        batch = np.concatenate([pictures, pictures[:, :, ::-1, :]]) if mirror else pictures
        feats = self.bases[key].features(batch)
        n = len(pictures)
        return feats[:n], (feats[n:] if mirror else None)


def load_model_set(
    paths: list[Path], runtime: Runtime | None = None, share_base: bool = True
) -> ModelSet:
    """Load `models/NAME` or `models/NAME/N` for each path; split versions share bases."""
    members: list[PublishedModel | PublishedHead] = []
    bases: dict[str, LoadedBase] = {}
    for path in paths:
        folder = resolve_model_path(Path(path))
        meta = read_metadata(folder)
        if not share_base or runtime_split_refusal(folder, meta, runtime) is not None:
            members.append(load_published(folder, runtime))
            continue
        head = load_head(folder, runtime)
        if head.identity.key not in bases:
            bases[head.identity.key] = load_base(folder, runtime)
        members.append(head)
    return ModelSet(members, bases)
