"""FitConfig refuses values out of range, whether they come from flags or from Python."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from training.config import FitConfig


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("min_accuracy", 90.0),
        ("min_accuracy", -0.5),
        ("epochs", 0),
        ("batch_size", 0),
        ("feature_batch_size", 0),
        ("learning_rate", 0.0),
        ("image_size", 16),
        ("image_size", 100),
        ("image_size", 0),  # a multiple of 32, but no picture
        ("width", -1),
        ("patience", -1),
        ("label_smoothing", 1.0),
        ("label_smoothing", -0.1),
        ("ray_actors", 0),
        ("valid_split", 0.0),
        ("valid_split", 1.0),
        ("head", "dense"),
    ],
)
def test_fit_config_out_of_range_is_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        FitConfig(**{field: value})
    assert info.value.errors()[0]["loc"] == (field,)


def test_fit_config_edges_are_accepted() -> None:
    cfg = FitConfig(dropout=0.0, min_accuracy=1.0, epochs=1, image_size=32, valid_split=0.5)
    assert (cfg.dropout, cfg.min_accuracy, cfg.image_size) == (0.0, 1.0, 32)


def test_fit_config_assignment_is_validated_too() -> None:
    cfg = FitConfig()
    with pytest.raises(ValidationError) as info:
        cfg.epochs = 0
    assert info.value.errors()[0]["loc"] == ("epochs",)
    assert cfg.epochs == 30


def test_fit_config_percent_for_fraction_says_what_was_meant() -> None:
    with pytest.raises(ValidationError, match=r"0\.9 for 90 % \(did you mean 0\.9\?\)"):
        FitConfig(min_accuracy=90)


def test_fit_config_replace_validates_and_refuses_unknown_names() -> None:
    assert FitConfig().replace(epochs=3).epochs == 3
    with pytest.raises(ValidationError):
        FitConfig().replace(epochs=0)
    with pytest.raises(ValidationError, match="epoch"):
        FitConfig().replace(epoch=3)  # a typo must not be ignored


def test_fit_refuses_bad_override_before_any_work(tmp_path: Path) -> None:
    from training.fit import fit

    with pytest.raises(ValidationError):
        fit(tmp_path / "absent-data", "m", tmp_path / "models", dropout=1.5, progress=False)
    assert not (tmp_path / "models").exists()
