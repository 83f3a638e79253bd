"""`metadata.json`: the typed, versioned record that travels with every published version.

Written by training (`write_metadata`) and read by every reader (`read_metadata`),
validated both ways, so a hand-edited or truncated file is refused with a
message that names the field instead of failing later inside a request.

`format_version` says which schema a file follows. Readers accept the versions
in `READABLE_FORMATS`; a newer file is refused with a message to upgrade.
"""

from __future__ import annotations

import json
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelstore.base_identity import BaseIdentity, HeadRecord
from modelstore.unknown import UnknownRecord

METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1
READABLE_FORMATS = (1,)


def package_version() -> str:
    """This package's version, recorded in every export and reported by the service."""
    try:
        return importlib_metadata.version("vgg-transfer-service")
    except importlib_metadata.PackageNotFoundError:
        return "0+unknown"


class InvalidModelError(Exception):
    """A model version folder that does not keep the format; the message says why."""


class BaseWeightsRecord(BaseModel):
    """Exactly which weights the convolutional base had when the model was exported."""

    model_config = ConfigDict(extra="allow")

    kind: str = Field(description="imagenet | hed | file | none")
    source: str = Field(description="where the weights came from, in words a person can check")
    sha256: str = Field(description="of the weights file, or random-seed-<n> for kind none")


class Int8Record(BaseModel):
    """The int8 artifact of a version (`modelstore.int8_artifact`), or why it has none.

    `status` "ready": `int8/model.xml` + `.bin` sit in the version folder, made by
    `runtime` at `runtime_version`, with these hashes; the loader refuses them if any
    of that no longer matches. "omitted": the version has no int8 artifact, `reason`
    says why (turned off, runtime not installed, the accuracy check failed).
    """

    model_config = ConfigDict(extra="allow")

    status: Literal["ready", "omitted"]
    reason: str = Field("", description="why the artifact is omitted (empty when ready)")
    runtime: str | None = Field(None, description="the runtime that runs it: openvino")
    runtime_version: str | None = None
    files: dict[str, str] = Field(
        default_factory=dict, description="file name in the version folder -> sha256"
    )
    calibration: dict[str, Any] | None = None  # photos used, where from, how chosen
    accuracy_check: dict[str, Any] | None = None  # int8 vs fp32 on the validation split
    quantized: str | None = None  # which part of the graph is int8, in words
    seconds: float | None = None  # export time the quantization and its check added

    @model_validator(mode="after")
    def _ready_has_files(self) -> Int8Record:
        if self.status == "ready" and (not self.files or not self.runtime_version):
            raise ValueError("a ready int8 artifact records its runtime version and file hashes")
        return self


class ModelMetadata(BaseModel):
    """Schema of metadata.json, format 1.

    Unknown fields are kept (a newer writer may add some) but never required.
    `training`, `metrics` and `history` are free-form records of the run.
    """

    model_config = ConfigDict(extra="allow")

    format_version: int = FORMAT_VERSION
    name: str = Field(min_length=1)
    version: int = Field(ge=1)
    # Not necessarily distinct: ImageNet-1k names two classes "crane" and two "maillot";
    # class ids (the index, or class_index's WordNet ids) are what tell them apart.
    labels: list[str] = Field(min_length=2, description="class names in output order")
    image_size: int = Field(ge=1, description="input height and width in pixels")
    signatures: dict[str, Any] = Field(default_factory=dict)
    base_weights: BaseWeightsRecord
    created_at: str
    package_version: str = "0+unknown"
    tensorflow_version: str | None = None
    keras_version: str | None = None
    # ImageNet models: [[wnid, name], ...] in output order; their class ids are the wnids.
    class_index: list[tuple[str, str]] | None = None
    precision: str | None = None
    training: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    history: dict[str, list[float]] | None = None
    gate: dict[str, Any] | None = None
    int8: Int8Record | None = None
    # What identifies the frozen base, and the head-only artifact (modelstore.base_identity):
    # versions with equal identities may share one loaded base. Absent: served whole.
    base_identity: BaseIdentity | None = None
    head: HeadRecord | None = None
    # The out-of-distribution scorer (modelstore.unknown); None: a version without one.
    unknown: UnknownRecord | None = None

    @field_validator("format_version")
    @classmethod
    def _readable(cls, value: int) -> int:
        if value not in READABLE_FORMATS:
            raise ValueError(
                f"format {value} is not readable by this version of the package "
                f"(reads {list(READABLE_FORMATS)}); upgrade vgg-transfer-service"
            )
        return value

    @model_validator(mode="after")
    def _index_matches_labels(self) -> ModelMetadata:
        if self.class_index is not None and len(self.class_index) != len(self.labels):
            raise ValueError(
                f"class_index has {len(self.class_index)} entries for {len(self.labels)} labels"
            )
        return self

    @property
    def class_ids(self) -> list[int | str]:
        """What `decode_predictions` and batch scoring report as `class_id`.

        ImageNet exports record `class_index`, so they answer WordNet ids (as
        `keras.applications` does); every other model answers the class index.
        """
        if self.class_index is not None:
            return [wnid for wnid, _ in self.class_index]
        return list(range(len(self.labels)))


def _field_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(the whole file)"
        parts.append(f"field {where!r}: {err['msg']}")
    return "; ".join(parts)


def parse_metadata(raw: Any, where: str = METADATA_FILE) -> ModelMetadata:
    """Validate an already-parsed JSON value; InvalidModelError names each bad field."""
    if not isinstance(raw, dict):
        raise InvalidModelError(f"{where} is not a JSON object")
    try:
        return ModelMetadata.model_validate(raw)
    except ValidationError as exc:
        raise InvalidModelError(f"{where} is invalid: {_field_errors(exc)}") from exc


def read_metadata(version_dir: Path) -> ModelMetadata:
    """The validated metadata of one version folder; InvalidModelError says what is wrong."""
    path = Path(version_dir) / METADATA_FILE
    if not path.is_file():
        raise InvalidModelError(f"{METADATA_FILE} is missing in {version_dir}")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidModelError(f"{METADATA_FILE} is unreadable: {exc}") from exc
    return parse_metadata(raw)


def write_metadata(version_dir: Path, metadata: ModelMetadata) -> None:
    """Write metadata.json; write it last, since its presence marks a complete version."""
    text = metadata.model_dump_json(indent=2, exclude_none=True)
    (Path(version_dir) / METADATA_FILE).write_text(text + "\n")
