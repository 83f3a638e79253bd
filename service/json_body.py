"""Parse a JSON request body: fast (orjson), bounded in depth, and with errors a person can act on.

No FastAPI here. Called off the event loop (`Predictor.parse_body` runs it in the
decode pool): an 18 MB body takes a while to parse and must not hold up
`/healthz` or other requests.
"""

from __future__ import annotations

from typing import Any

import orjson

from service.errors import BadRequest, Unprocessable

# orjson refuses documents nested deeper than this; nothing we accept is deeper than 5.
MAX_DEPTH = 1024


def parse_json(body: bytes) -> Any:
    """The parsed document; BadRequest (400) for anything that is not JSON we can read."""
    if not body.strip():
        raise BadRequest("the request body is empty; send a JSON document")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = str(exc)
        if "depth limit" in reason:
            raise BadRequest(
                f"the JSON document is nested more than {MAX_DEPTH} levels deep"
            ) from exc
        if body[exc.pos : exc.pos + 9].lstrip(b"-").startswith((b"NaN", b"Infinity")):
            # Python's json.dumps writes these by default; they are not JSON numbers.
            raise Unprocessable(
                f"the JSON holds NaN or Infinity at char {exc.pos}; send finite numbers"
            ) from exc
        if "infinity" in reason:
            # Well-formed JSON, but a number no float can hold (1e400): the values are wrong.
            raise Unprocessable(
                f"the JSON holds a number too large for a float ({reason})"
            ) from exc
        raise BadRequest(f"the body is not valid JSON: {reason}") from exc
