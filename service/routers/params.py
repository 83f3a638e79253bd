"""Path parameters the model routes share, with the examples /docs fills in."""

from __future__ import annotations

from typing import Annotated, Any

from annotated_types import Ge, Le
from fastapi import Path, Request
from pydantic import BeforeValidator

from modelstore.layout import MAX_VERSION_DIGITS, parse_version
from service.errors import BadRequest


def _strict_version(value: Any) -> Any:
    """Path text -> int by `modelstore.layout.parse_version`, the rule every protocol shares."""
    if isinstance(value, str):
        version = parse_version(value)
        if version is None:
            raise ValueError(
                f"a version is a positive integer written in digits, like 3 (got {value!r}; "
                "not 03, +3, 3.0 or with spaces)"
            )
        return version
    return value


def one_value_per_parameter(request: Request) -> None:
    """A query parameter given twice (`?model=a&model=b`) is ambiguous: 400, never a guess."""
    names = [name for name, _ in request.query_params.multi_items()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BadRequest(f"query parameter(s) given more than once: {', '.join(repeated)}")


# The examples name the model every fresh install can answer with after `training fit`
# (tests/service/test_service_openapi.py sends each one to the live app).
ModelName = Annotated[str, Path(description="model name", examples=["car_truck"])]
# The bounds go on the int, ahead of the BeforeValidator: given to Path(ge=...) after it,
# pydantic cannot tell they apply to an int and the schema says `ge: 1` instead of
# `minimum: 1`, so clients (and schemathesis) send 0 and -322. The maximum is the
# largest number parse_version reads (MAX_VERSION_DIGITS digits).
Version = Annotated[
    int,
    Ge(1),
    Le(10**MAX_VERSION_DIGITS - 1),
    BeforeValidator(_strict_version),
    Path(description="model version (a positive integer)", examples=[1]),
]
