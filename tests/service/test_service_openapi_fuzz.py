"""schemathesis against the app's own OpenAPI, in-process: no 5xx, answers as documented.

PYTHONPATH=. python -m pytest tests/service/test_service_openapi_fuzz.py -q
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from service.app import create_app
from tests.service.conftest import make_settings

ADMIN_KEY = "openapi-fuzz-admin-key"
EXAMPLES_PER_OPERATION = 40

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20240611,
        "generation": {
            "max-examples": EXAMPLES_PER_OPERATION,
            "deterministic": True,
            "database": "none",
        },
        "auth": {"openapi": {"HTTPBearer": {"bearer": ADMIN_KEY}}},
        # Random model names and versions only ever meet a 404: most cases name a model
        # and version that exist, so bodies get as far as decoding and the model.
        "dictionaries": {
            "models": {"values": ["car_truck", "vgg16_imagenet"]},
            "versions": {"values": [1]},
        },
        "parameters": {
            "path.name": {"dictionary": "models", "probability": 0.8},
            "query.model": {"dictionary": "models", "probability": 0.8},
            "path.version": {"dictionary": "versions", "probability": 0.8},
        },
        "checks": {
            # 503 (overloaded, not ready) and 504 (timeout) are documented answers.
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503", "504"]},
            # What a JSON Schema cannot say about a schema-valid body: whether the bytes
            # decode as an image (415, 422), their pixel count (413), the model's input
            # size (422); what the named version can do (409: explain without its signature,
            # unknown outputs without the scorer; documented on those routes). A schema-valid
            # body refused as malformed (400) is still a failure.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "413", "415", "422", "5xx"]
            },
        },
    }
)

STATUSES: collections.Counter[int] = collections.Counter()


class CountingApp:
    """The app, counting the HTTP requests it answers by status.

    schemathesis starts and ends an ASGI lifespan around every test (one per
    operation); the app's lifespan runs once for the module instead (models load
    once), so lifespan messages are answered here and never reach the app.
    """

    def __init__(self, app: Any) -> None:
        self.app = app  # the fixture plugs in the app under test

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                STATUSES[message["status"]] += 1
            await send(message)

        await self.app(scope, receive, counting_send)


# The OpenAPI document depends on neither models nor settings: it is read from an app
# without models; the app under test (models, admin key) is plugged in by the fixture.
APP = CountingApp(create_app(make_settings(Path("/nonexistent"))))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)


@pytest.fixture(scope="module")
def fuzzed_app(models_dir: Path) -> Iterator[CountingApp]:
    app = create_app(make_settings(models_dir, admin_key=ADMIN_KEY))
    with TestClient(app):  # the app's lifespan: models loaded and warmed up once
        APP.app = app
        yield APP
    print(f"\nschemathesis: {sum(STATUSES.values())} requests, by status {dict(STATUSES)}")


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_every_operation_conforms(case: schemathesis.Case, fuzzed_app: CountingApp) -> None:
    case.call_and_validate()
