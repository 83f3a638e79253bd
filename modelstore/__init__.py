"""The on-disk model format, shared by `training` (writes) and `service` (reads).

- `modelstore.layout`: `models/<name>/<version>/`, drafts, publishing, listing;
- `modelstore.contract`: signature and tensor names, dtypes;
- `modelstore.metadata`: the typed, versioned `metadata.json` schema;
- `modelstore.loader`: the one loader of a published version (imports TensorFlow,
  so it is not imported here: the layout and schema stay cheap to import).

Imports `imaging` at most; never `training` or `service`.
"""

from modelstore.layout import (
    Draft,
    latest_version,
    list_models,
    list_versions,
    reserve_version,
    resolve_model_path,
)
from modelstore.metadata import (
    METADATA_FILE,
    InvalidModelError,
    ModelMetadata,
    read_metadata,
    write_metadata,
)

__all__ = [
    "METADATA_FILE",
    "Draft",
    "InvalidModelError",
    "ModelMetadata",
    "latest_version",
    "list_models",
    "list_versions",
    "read_metadata",
    "reserve_version",
    "resolve_model_path",
    "write_metadata",
]
