"""Tiny 32x32 versions with an unknown scorer and the explain signature, made without a fit.

Random VGG16 weights and a random head (real graph, real export): the service tests
check shapes, fields and status codes on them; `training.fit` has its own tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelstore.layout import reserve_version
from modelstore.metadata import write_metadata
from modelstore.unknown import unknown_signature_summary


def export_tiny_scored(
    models_dir: Path,
    name: str,
    labels: list[str],
    size: int = 32,
    seed: int = 1,
    threshold: float | None = None,
) -> Path:
    """Publish the next version of `name` with a scorer fitted on random pictures;
    `threshold` overrides the calibrated one (-1.0: every picture is flagged)."""
    from training.export import new_metadata, write_savedmodel
    from training.model import build_base, build_classifier, build_head, feature_model
    from training.unknown import ExtraSignatures, fit_unknown_scorer

    base, weights = build_base("none", size, seed=seed)
    head = build_head(base.output_shape[1:], len(labels), kind="gap", width=8, dropout=0.0)
    classifier = build_classifier(base, head, size)
    rng = np.random.default_rng(seed)
    pictures = rng.integers(0, 256, (40, size, size, 3), dtype=np.uint8)
    maps = np.asarray(feature_model(base, size).predict_on_batch(pictures), np.float32)
    scorer = fit_unknown_scorer(maps[:20], maps[20:], rate=0.05)
    if threshold is not None:
        scorer.threshold = threshold
    extra = ExtraSignatures(base, head, size, False, scorer)
    with reserve_version(Path(models_dir), name) as draft:
        # With the split fields, as `fit` records them: the service runs it on a shared base.
        split = write_savedmodel(classifier, draft.path, size, extra=extra)
        metadata = new_metadata(
            draft, labels, size, weights.to_dict(), unknown=scorer.record(), **split
        )
        metadata.signatures.update(unknown_signature_summary(size, len(labels)))
        write_metadata(draft.path, metadata)
    return draft.final_path
