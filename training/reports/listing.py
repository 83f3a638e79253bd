"""`python -m training list-models`: the published versions as a table or JSON.

    python -m training list-models --models-dir models [--json]

The data comes from modelstore.catalog (layout + metadata.json, no TensorFlow);
this module only lays it out for a person (or a script, with --json).
"""

from __future__ import annotations

import json
from pathlib import Path

from modelstore.catalog import VersionEntry, catalog

COLUMNS = ("", "model", "version", "accuracy", "size", "base weights", "precision", "created")


def human_size(size: int) -> str:
    """1536 -> '1.5 KiB'; binary units, one decimal."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _row(entry: VersionEntry) -> tuple[str, ...]:
    accuracy = "-" if entry.accuracy is None else f"{entry.accuracy:.4f}"
    return (
        "*" if entry.newest else "",
        entry.name,
        str(entry.version),
        accuracy,
        human_size(entry.size_bytes),
        entry.base_weights or "-",
        entry.precision or "-",
        entry.created_at or "-",
    )


def render_listing(models_dir: Path, as_json: bool = False) -> str:
    """The table (or JSON array) of every published version under `models_dir`."""
    entries = catalog(models_dir)
    if as_json:
        return json.dumps([e.to_dict() for e in entries], indent=2)
    if not entries:
        return f"no published model under {models_dir}"
    rows = [COLUMNS, *(_row(e) for e in entries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = []
    for entry, row in zip([None, *entries], rows, strict=True):
        lead = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        if entry is not None and entry.error is not None:
            # The reason is long: it follows the name and version instead of widening columns.
            lead = "  ".join(c.ljust(w) for c, w in zip(row[:3], widths[:3], strict=True))
            lead += f"  broken ({row[4]}): {entry.error}"
        lines.append(lead)
    lines.append("\n* the newest readable version of each model, the one the service loads")
    return "\n".join(lines)
