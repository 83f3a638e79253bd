"""Path parameters the model routes share, with the examples /docs fills in."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

# The examples name the model every fresh install can answer with after `training fit`
# (tests/service/test_service_openapi.py sends each one to the live app).
ModelName = Annotated[str, Path(description="model name", examples=["car_truck"])]
Version = Annotated[int, Path(ge=1, description="model version (a positive integer)", examples=[1])]
