"""MkDocs hook: the configuration tables, rendered from the code at every site build.

The service's table comes from `service.settings.Settings` (variable, flag, default,
description), the training table from `training.config.FitConfig` (flag, default,
description), so a setting added, renamed or re-described in the code is documented
by the next build and never copied by hand. A page asks for a table with a marker
line (`SERVICE_SETTINGS_MARKER`, `FIT_SETTINGS_MARKER`); `mkdocs.yml` lists this
file under `hooks:`.

Run: `mkdocs build --strict` (scripts/test.sh does), or `mkdocs serve` to read the site.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# The repository root first on the path: the site documents this checkout's code, not
# whatever copy of the packages the virtualenv happens to hold.
REPO = Path(__file__).resolve().parents[1]
if sys.path[:1] != [str(REPO)]:
    sys.path.insert(0, str(REPO))

# Visible text, so that the page read as plain Markdown (on GitHub) says where its tables are.
SERVICE_SETTINGS_MARKER = (
    "*(The table of service settings is rendered here when the site is built.)*"
)
FIT_SETTINGS_MARKER = "*(The table of `fit` settings is rendered here when the site is built.)*"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (a `|` would start a new column)."""
    return " ".join(text.split()).replace("|", "\\|")


def _shown(value: Any) -> str:
    """A default as a user would type it: lists comma-separated, booleans lower case."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) if value else "(empty)"
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, vs in value.items() for v in vs) or "(empty)"
    return str(value)


def service_settings_table() -> str:
    """One row per `Settings` field: `VGGSVC_*` variable, flag, default, description."""
    from service.settings import ENV_PREFIX, NOT_FLAGS, Settings

    rows = ["| variable | flag | default | meaning |", "| --- | --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        flag = "(environment only)" if name in NOT_FLAGS else f"`--{name.replace('_', '-')}`"
        default = _shown(info.get_default(call_default_factory=True))
        rows.append(
            f"| `{ENV_PREFIX}{name.upper()}` | {flag} | `{_cell(default)}` "
            f"| {_cell(info.description or '')} |"
        )
    return "\n".join(rows)


def fit_settings_table() -> str:
    """One row per `FitConfig` field: `fit` flag, default, and `fit --help`'s text for it
    (the field's description, then what "auto" picks, from training.defaults)."""
    from training.config import FitConfig
    from training.fit_flags import flag_name, setting_help

    rows = ["| flag | default | meaning |", "| --- | --- | --- |"]
    for name, info in FitConfig.model_fields.items():
        default = _shown(info.get_default(call_default_factory=True))
        rows.append(f"| `{flag_name(name)}` | `{_cell(default)}` | {_cell(setting_help(name))} |")
    return "\n".join(rows)


def render(markdown: str) -> str:
    """The page with each table marker replaced by its table."""
    if SERVICE_SETTINGS_MARKER in markdown:
        markdown = markdown.replace(SERVICE_SETTINGS_MARKER, service_settings_table())
    if FIT_SETTINGS_MARKER in markdown:
        markdown = markdown.replace(FIT_SETTINGS_MARKER, fit_settings_table())
    return markdown


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs' hook for each page's Markdown before it is converted to HTML."""
    return render(markdown)
