"""The OpenAPI document tells the truth: what it calls valid, the service accepts.

schemathesis (tests/service/test_service_openapi_fuzz.py) explores the whole
document; these pin the gaps it found, one by one.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    return client.get("/openapi.json").json()


def test_openapi_version_parameters_are_required_positive_integers(spec: dict[str, Any]) -> None:
    seen = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                if param["name"] != "version":
                    continue
                where = f"{method.upper()} {path}"
                # Never `anyOf [integer, null]` (schemathesis sent /versions/null), and never
                # a query parameter on the routes without a version.
                assert param["in"] == "path" and "{version}" in path, where
                assert param["required"] is True, where
                assert param["schema"]["type"] == "integer", where
                assert param["schema"]["minimum"] == 1, where
                seen += 1
    assert seen >= 6  # per version: v1 status, metadata, predict; v2 metadata, ready, infer
