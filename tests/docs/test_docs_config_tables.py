"""The configuration tables of the docs site are rendered from the code, field by field."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from service.settings import ENV_PREFIX, Settings
from training.config import FitConfig
from training.fit_flags import setting_help

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config_tables() -> ModuleType:
    # The MkDocs hook is a file of the site, not a package: load it the way MkDocs does.
    spec = importlib.util.spec_from_file_location("config_tables", REPO / "docs/config_tables.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def page(config_tables: ModuleType) -> str:
    return str(config_tables.render((REPO / "docs/configuration.md").read_text()))


def _row(page: str, first_cell: str) -> list[str]:
    rows = [line for line in page.splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, f"{first_cell}: {len(rows)} rows in the configuration page"
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", rows[0])[1:-1]]


def _plain(text: str) -> str:
    return " ".join(text.split()).replace("\\|", "|")


def _simple_default(value: object) -> str | None:
    """The default as the table must show it, for the plain scalar kinds."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | str | Path):
        return str(value)
    return None


def test_docs_configuration_has_a_row_for_every_service_setting(page: str) -> None:
    assert "rendered here when the site is built" not in page
    for name, info in Settings.model_fields.items():
        cells = _row(page, f"`{ENV_PREFIX}{name.upper()}`")
        assert info.description and _plain(cells[3]) == " ".join(info.description.split()), name
        default = _simple_default(info.get_default(call_default_factory=True))
        if default is not None:
            assert cells[2] == f"`{default}`", name
    assert _row(page, "`VGGSVC_ADMIN_KEY`")[1] == "(environment only)"
    assert _row(page, "`VGGSVC_MAX_BATCH_SIZE`")[1:3] == ["`--max-batch-size`", "`16`"]


def test_docs_configuration_has_a_row_for_every_fit_setting(page: str) -> None:
    for name, info in FitConfig.model_fields.items():
        cells = _row(page, f"`--{name.replace('_', '-')}`")
        assert cells[2], f"--{name} has no description"
        # The field's description, then (for the "auto" settings) what auto picks.
        assert info.description, name
        assert _plain(cells[2]) == " ".join(setting_help(name).split()), name
        assert _plain(cells[2]).startswith(" ".join(info.description.split())), name
        default = _simple_default(info.get_default(call_default_factory=True))
        if default is not None:
            assert cells[1] == f"`{default}`", name
    assert _row(page, "`--epochs`")[1] == "`30`"
