"""Class weights: every class weighs the same in the loss, whatever its size."""

from __future__ import annotations

import numpy as np
import pytest

import training.fit
from training.fit import FitConfig, class_weights, train_head

COUNTS = (40, 15, 5)


def test_class_weights_give_every_class_the_same_total_weight() -> None:
    labels = [0] * 6 + [1] * 3 + [2]
    weights = class_weights(labels, 3)
    assert weights == pytest.approx({0: 10 / 18, 1: 10 / 9, 2: 10 / 3})
    totals = [labels.count(c) * weights[c] for c in range(3)]
    assert totals == pytest.approx([10 / 3] * 3)


def _learned_answer() -> np.ndarray:
    """Train a head on features that tell the classes nothing; its answer for any picture."""
    y = np.repeat(np.arange(len(COUNTS)), COUNTS)
    x = np.ones((len(y), 1, 1, 2), np.float32)
    cfg = FitConfig(
        head="flatten", width=0, dropout=0.0, epochs=30, batch_size=20, learning_rate=0.1
    )
    cfg.patience = cfg.epochs  # let it run to the end
    head, _ = train_head(cfg, x, y, x, y, len(COUNTS))
    return np.asarray(head.predict(x[:1], verbose=0)[0])


def test_class_weights_balance_what_the_head_learns(monkeypatch: pytest.MonkeyPatch) -> None:
    # With nothing to go on, the head's best answer under the loss is the class prior:
    # the weighted prior is uniform; the plain one is the class counts 40:15:5.
    weighted = _learned_answer()
    np.testing.assert_allclose(weighted, [1 / 3] * 3, atol=0.05)
    # The same run with every weight 1 does learn the counts: the setting can tell.
    monkeypatch.setattr(
        training.fit, "class_weights", lambda labels, n: dict.fromkeys(range(n), 1.0)
    )
    unweighted = _learned_answer()
    np.testing.assert_allclose(unweighted, np.asarray(COUNTS) / sum(COUNTS), atol=0.05)
