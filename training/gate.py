"""The quality gate of batch retraining jobs: publish only a model good enough to serve.

- `min_accuracy`: the new model's validation accuracy must reach it;
- `promote_if_better`: it must beat the current latest version, re-evaluated
  now on the same validation files (so data changes cannot flatter either side).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from modelstore.layout import latest_version

log = logging.getLogger(__name__)


class GateFailedError(RuntimeError):
    """The new model is not good enough; nothing was published."""


def accuracy_of_version(version_dir: Path, paths: list[Path], labels: list[str]) -> float:
    """Accuracy of a published version on `paths` (true labels given as names)."""
    from modelstore.loader import load_published  # imports TensorFlow
    from modelstore.runtime import current_runtime
    from training.predict import score_files

    # The process's runtime (fit set it): both models are scored in the same precision.
    model = load_published(version_dir, current_runtime())
    missing = sorted(set(labels) - set(model.labels))
    if missing:
        raise GateFailedError(
            f"cannot compare with {version_dir}: it does not know the classes {missing}; "
            "drop --promote-if-better to publish a model with a different set of classes"
        )
    correct, seen = 0, 0
    path_labels = dict(zip(paths, labels, strict=True))
    for batch in score_files(model, paths):
        predicted = [model.labels[i] for i in np.argmax(batch.probabilities, axis=1)]
        correct += sum(p == path_labels[f] for f, p in zip(batch.paths, predicted, strict=True))
        seen += len(batch.paths)
    return correct / seen if seen else 0.0


def check_gate(
    accuracy: float,
    min_accuracy: float | None,
    promote_if_better: bool,
    model_dir: Path,
    valid_paths: list[Path],
    valid_labels: list[str],
) -> dict[str, object]:
    """Raise GateFailedError when the new model must not be published; else say what passed."""
    report: dict[str, object] = {"accuracy": accuracy}
    if min_accuracy is not None:
        report["min_accuracy"] = min_accuracy
        if accuracy < min_accuracy:
            raise GateFailedError(
                f"validation accuracy {accuracy:.4f} is below --min-accuracy {min_accuracy:.4f}; "
                "nothing was published"
            )
    if promote_if_better:
        current = latest_version(model_dir)
        if current is None:
            log.warning(
                "--promote-if-better: %s has no version yet; publishing the first", model_dir
            )
        else:
            theirs = accuracy_of_version(model_dir / str(current), valid_paths, valid_labels)
            report["compared_with"] = {"version": current, "accuracy": theirs}
            if accuracy <= theirs:
                raise GateFailedError(
                    f"validation accuracy {accuracy:.4f} does not beat version {current} "
                    f"({theirs:.4f} on the same validation files); nothing was published"
                )
    return report
