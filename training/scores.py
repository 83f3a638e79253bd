"""Classification metrics as plain JSON-ready numbers (shared by fit, evaluate and the gate)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return matrix


def f1_score(precision: float, recall: float) -> float:
    """Harmonic mean of precision and recall; 0 when both are 0."""
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% (z=1.96) Wilson score interval of a proportion such as accuracy.

    Unlike the normal approximation it stays inside [0, 1] and is honest for the
    small validation sets this project often has (12 pictures in the demo).
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, labels: list[str]
) -> dict[str, Any]:
    """Accuracy, log loss, per-class precision/recall/F1/support and the confusion matrix."""
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probabilities, dtype=np.float64)
    y_pred = probs.argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    picked = np.clip(probs[np.arange(len(y_true)), y_true], 1e-7, 1.0)
    per_class = {}
    for i, label in enumerate(labels):
        predicted, actual = int(matrix[:, i].sum()), int(matrix[i, :].sum())
        precision = float(matrix[i, i] / predicted) if predicted else 0.0
        recall = float(matrix[i, i] / actual) if actual else 0.0
        per_class[label] = {
            "precision": precision,
            "recall": recall,
            "f1": f1_score(precision, recall),
            "support": actual,
        }
    return {
        "count": len(y_true),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "loss": float(-np.log(picked).mean()) if len(y_true) else 0.0,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """Area under the ROC curve of a score meant to be higher `outside` than `inside`:
    P(outside score > inside score), ties counting half (Mann-Whitney U)."""
    inside, outside = np.asarray(inside, np.float64), np.asarray(outside, np.float64)
    if not len(inside) or not len(outside):
        raise ValueError("AUROC needs at least one score on each side")
    both = np.concatenate([inside, outside])
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    # The rank of a value is the mean of the positions its ties occupy (1-based).
    ends = np.cumsum(counts)
    mean_rank = ends - (counts - 1) / 2.0
    rank_out = mean_rank[inverse[len(inside) :]].sum()
    n_in, n_out = len(inside), len(outside)
    return float((rank_out - n_out * (n_out + 1) / 2.0) / (n_in * n_out))


def unknown_detection(
    inside: np.ndarray, outside: np.ndarray, threshold: float
) -> dict[str, float | int]:
    """How an unknown score tells `outside` pictures from `inside` ones at `threshold`."""
    return {
        "auroc": round(auroc(inside, outside), 4),
        "threshold": threshold,
        "in_distribution_count": len(inside),
        "in_distribution_flagged": round(float(np.mean(np.asarray(inside) > threshold)), 4),
        "ood_count": len(outside),
        "ood_flagged": round(float(np.mean(np.asarray(outside) > threshold)), 4),
    }
