"""The unknown score on the serving path: one model call, one array per batch, fields per image.

A version fitted with a scorer is batched through `predict_with_unknown`: its
probabilities and score come from the same pass of the base. The batcher slices
one array by rows, so the score rides as one extra column (`packed_predict`)
and is split off again after the batch (`unpack`). A version without a scorer
runs `serving_default` exactly as before; its answers carry `null` fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from modelstore.loader import PublishedModel
from modelstore.split_loader import PublishedHead
from modelstore.unknown import UNKNOWN_FLAG_NAME, UNKNOWN_LABEL, UNKNOWN_SCORE_NAME


def packed_predict(model: PublishedModel) -> Callable[[np.ndarray], np.ndarray]:
    """What the batcher runs: probabilities `[n, classes]`, or `[n, classes + 1]` with the
    unknown score as the last column when the version has a scorer."""
    if model.beyond is None:
        return model.predict

    def predict(pictures: np.ndarray) -> np.ndarray:
        probs, scores = model.predict_with_unknown(pictures)
        return np.concatenate([probs, scores[:, None].astype(np.float32)], axis=1)

    return predict


def packed_width(model: PublishedModel) -> int:
    """Columns of `packed_predict`'s answer."""
    return len(model.labels) + (1 if model.beyond is not None else 0)


def unpack(
    model: PublishedModel | PublishedHead, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """`packed_predict`'s rows -> probabilities and unknown scores (None: no scorer)."""
    if model.beyond is None:
        return rows, None
    return rows[:, :-1], rows[:, -1]


def flags(model: PublishedModel | PublishedHead, scores: np.ndarray | None) -> np.ndarray | None:
    """True where a score is above the version's calibrated threshold."""
    if scores is None or model.beyond is None:
        return None
    return np.asarray(scores > model.beyond.threshold)


def unknown_fields(model: PublishedModel | PublishedHead, score: float | None) -> dict[str, Any]:
    """`{"unknown_score": s, "unknown": bool}` of one image; nulls without a scorer."""
    if score is None or model.beyond is None:
        return {UNKNOWN_SCORE_NAME: None, UNKNOWN_FLAG_NAME: None}
    return {
        UNKNOWN_SCORE_NAME: float(score),
        UNKNOWN_FLAG_NAME: bool(score > model.beyond.threshold),
    }


def answer_label(best_label: str, fields: dict[str, Any], abstain: bool) -> str:
    """The label an image is answered with: "unknown" when asked to abstain and flagged."""
    return UNKNOWN_LABEL if abstain and fields[UNKNOWN_FLAG_NAME] else best_label


def scorer_summary(model: PublishedModel | PublishedHead) -> dict[str, Any] | None:
    """What /models says of a version's scorer; None when it has none."""
    if model.beyond is None:
        return None
    record = model.beyond.record
    return {
        "method": record.method,
        "representation": record.representation,
        "threshold": record.threshold,
        "calibration": record.calibration,
    }
