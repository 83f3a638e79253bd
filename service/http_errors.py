"""Map every failure to the one error shape (`service.errors.error_body`) and its status."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ServiceError, error_body

log = logging.getLogger(__name__)


async def send_error(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """The error shape sent straight on the ASGI channel, for middleware below the app's
    exception handlers; the connection is closed after it."""
    body = json.dumps(error_body(status, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(error_body(status, message, **extra), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no endpoint {request.method} {request.url.path}; see /docs"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs"
        return error_response(exc.status_code, message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Query/path parameters of the wrong type are malformed requests (400).
        return error_response(400, _validation_message(exc))

    # Anything else: `UnexpectedErrorMiddleware`, which `create_app` places around every
    # middleware that can fail but metrics. Not `@app.exception_handler(Exception)`:
    # Starlette answers with that handler and then re-raises, so uvicorn logged every
    # traceback a second time and dropped the connection.


class UnexpectedErrorMiddleware:
    """Any exception no handler maps: one log record with the traceback, and a 500 JSON."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # a failing lifespan must still stop the process
            await self.app(scope, receive, send)
            return
        started = False

        async def send_started(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_started)
        except MemoryError:
            # Not the request's fault (every input is bounded by the pixel and size limits):
            # the process was short of memory at that moment, e.g. many large decodes at once.
            # Retrying later can succeed, so this is "unavailable", not an internal error.
            log.exception("out of memory on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                message = (
                    "the server ran out of memory for this request; retry later, or send a "
                    "smaller image"
                )
                await error_response(503, message, {"Retry-After": "5"})(scope, receive, send)
        except Exception as exc:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if not started:  # else the client sees the answer cut short
                message = f"internal error ({type(exc).__name__}); see the server log"
                await error_response(500, message)(scope, receive, send)
