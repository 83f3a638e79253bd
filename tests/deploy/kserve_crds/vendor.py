"""Cut KServe's CRD files down to the OpenAPI schemas the deploy tests validate against.

    python tests/deploy/kserve_crds/vendor.py KSERVE_CHECKOUT/config/crd/full

Reads `serving.kserve.io_servingruntimes.yaml` and `serving.kserve.io_inferenceservices.yaml`
from that folder and writes `<kind>.<version>.json` beside this script: the served storage
version's `openAPIV3Schema`, with the fields listed in DROP removed. A removed field is not
allowed by the tests (they reject unknown fields), so a manifest that starts using one fails
until its schema is vendored again; nothing passes unchecked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
FILES = {
    "ServingRuntime": "serving.kserve.io_servingruntimes.yaml",
    "InferenceService": "serving.kserve.io_inferenceservices.yaml",
}
# Framework-specific predictors (each a full Container schema), the transformer and explainer
# components and v0.20's `canary` list: our manifests use none of them, and they are most of
# the InferenceService schema's size. Multi-node workers likewise for the runtime.
FRAMEWORKS = ["huggingface", "lightgbm", "onnx", "paddle", "pmml", "pytorch", "sklearn"]
FRAMEWORKS += ["tensorflow", "triton", "xgboost"]
DROP: dict[str, list[tuple[str, ...]]] = {
    "ServingRuntime": [("spec", "workerSpec")],
    "InferenceService": [
        ("spec", "canary"),
        ("spec", "explainer"),
        ("spec", "transformer"),
        ("spec", "predictor", "workerSpec"),
        *[("spec", "predictor", name) for name in FRAMEWORKS],
    ],
}


def storage_schema(crd: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (version,) = [v for v in crd["spec"]["versions"] if v.get("served") and v.get("storage")]
    return version["name"], version["schema"]["openAPIV3Schema"]


def drop(schema: dict[str, Any], path: tuple[str, ...]) -> None:
    node = schema
    for name in path[:-1]:
        node = node["properties"][name]
    del node["properties"][path[-1]]


def main(crd_dir: Path) -> None:
    for kind, filename in FILES.items():
        crd = yaml.safe_load((crd_dir / filename).read_text())
        version, schema = storage_schema(crd)
        for path in DROP[kind]:
            drop(schema, path)
        out = HERE / f"{kind.lower()}.{version}.json"
        out.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        print(f"{out.name}: {out.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
