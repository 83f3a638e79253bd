"""Settings: VGGSVC_* environment variables, CLI flags over them, validation at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.__main__ import parse_settings
from service.settings import Settings


def test_settings_read_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VGGSVC_MODELS_DIR", "/srv/models")
    monkeypatch.setenv("VGGSVC_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("VGGSVC_ADMIN_KEY", "k")
    settings = Settings()
    assert settings.models_dir == Path("/srv/models")
    assert settings.max_batch_size == 8 and settings.admin_key == "k"
    assert settings.buckets == [1, 2, 3, 4, 5, 6, 7, 8]  # no padding by default


def test_settings_batch_sizes_pad_up_to_max_batch_size() -> None:
    settings = Settings(max_batch_size=16, batch_sizes="4,1,32")
    assert settings.buckets == [1, 4, 16]


def test_settings_cli_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VGGSVC_PORT", "9000")
    monkeypatch.setenv("VGGSVC_HOST", "0.0.0.0")
    settings = parse_settings(["--port", "8123", "--models-dir", "elsewhere"])
    assert settings.port == 8123 and settings.host == "0.0.0.0"
    assert settings.models_dir == Path("elsewhere")


def test_settings_buckets_always_end_at_max_batch_size() -> None:
    assert Settings(batch_sizes="4,1,64", max_batch_size=16).buckets == [1, 4, 16]


def test_settings_pins_parsed_and_bad_values_rejected() -> None:
    assert Settings(pinned_versions="car_truck:1, car_truck:3,x:2").pins == {
        "car_truck": {1, 3},
        "x": {2},
    }
    for bad in (
        {"pinned_versions": "car_truck"},
        {"batch_sizes": "a,b"},
        {"log_level": "loud"},
        {"max_batch_size": 0},
    ):
        with pytest.raises(ValueError):
            Settings(**bad)  # type: ignore[arg-type]


def test_settings_every_field_is_in_the_readme_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [
        name for name in Settings.model_fields if f"| `VGGSVC_{name.upper()}` |" not in readme
    ]
    assert missing == []
