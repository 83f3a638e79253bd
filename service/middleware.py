"""ASGI middleware: a hard cap on request bytes and per-request metrics.

The cap is applied before any route or form parser sees the body: a declared
Content-Length over the limit is refused at once, and a body streamed without
one is read only up to the limit. Either way the answer is a 413 JSON error.
After a body of 1 MiB or more, the memory its handling freed goes back to the OS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from imaging.memory import release_free_memory
from service.http_errors import send_error
from service.telemetry import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
MODEL_ENDPOINTS = ("/predict", "/decode_predictions")
# After a request body this large, freed memory goes back to the OS (imaging.memory).
RELEASE_MEMORY_AFTER_BYTES = 1 << 20


class BodyLimitMiddleware:
    """The body cap (413), and the body deadline: a body that has not arrived in full within
    `body_timeout_s` of the headers gets 408 (a stalled upload holds no memory for long).
    Whenever a large body is abandoned (408, 413, client gone), its memory goes back too."""

    def __init__(self, app: ASGIApp, max_bytes: int, body_timeout_s: float | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and b"transfer-encoding" in headers:
            # RFC 9112 6.3: a proxy that trusts Content-Length while we trust the chunked
            # framing (or the reverse) would let one request smuggle another.
            await send_error(send, 400, "send either Content-Length or Transfer-Encoding, not both")
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        too_big = f"the request body is larger than the limit of {self.max_bytes} bytes"
        if (
            declared is not None
            and declared.isascii()
            and declared.isdigit()
            and int(declared) > self.max_bytes
        ):
            await send_error(send, 413, too_big)
            return
        chunks: list[bytes] = []
        complete = False
        try:
            complete = await self._read_body(receive, send, chunks, too_big)
        finally:
            if not complete:
                # Abandoned (408, 413, client gone): a 19 MB stalled upload left +265 MB on
                # the C heap for good before this trim.
                abandoned = sum(map(len, chunks))
                chunks.clear()
                if abandoned >= RELEASE_MEMORY_AFTER_BYTES:
                    await asyncio.to_thread(release_free_memory)
        if not complete:
            return
        size = sum(map(len, chunks))
        body = b"".join(chunks)
        chunks.clear()
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await self.app(scope, replay, send)
        finally:
            if size >= RELEASE_MEMORY_AFTER_BYTES:
                # A large body (a 10 MB JSON array: +75 MB of RSS for good) leaves its copies
                # and parsed objects on the C heap, which keeps them; give them back.
                body = b""
                await asyncio.to_thread(release_free_memory)

    async def _read_body(
        self, receive: Receive, send: Send, chunks: list[bytes], too_big: str
    ) -> bool:
        """Read the body into `chunks`; False when it was answered (408, 413) or abandoned."""
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return False
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_bytes:
                        await send_error(send, 413, too_big)
                        return False
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return True
        except TimeoutError:
            await send_error(
                send,
                408,
                f"the request body did not arrive within {self.body_timeout_s:g} s "
                f"({size} bytes received); send it faster, or smaller",
            )
            return False


# Paths FastAPI serves outside its routers (no route in the scope), labelled by their own
# path; anything else without a route is "unmatched", so clients cannot add label values.
DOCS_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
DOCS_ASSETS = "/static-offline-docs"


def endpoint_label(scope: Scope) -> str:
    route = scope.get("route")
    if route is not None and getattr(route, "path", None):
        return str(route.path)
    path = str(scope.get("path", ""))
    if path in DOCS_PATHS:
        return path
    if path.startswith(DOCS_ASSETS + "/"):
        return DOCS_ASSETS
    return "unmatched"


class MetricsMiddleware:
    """Counts requests by endpoint (route template), model and status; times them."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        default_model: Callable[[], str | None],
        known_models: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.default_model = default_model
        self.known_models = known_models

    def _model(self, scope: Scope, endpoint: str) -> str:
        name = (scope.get("path_params") or {}).get("name")
        if name:
            return str(name)
        if endpoint in MODEL_ENDPOINTS:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            return query.get("model", [self.default_model() or ""])[0]
        return ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        began = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight.dec()
            endpoint = endpoint_label(scope)
            self.metrics.request_seconds.labels(endpoint=endpoint).observe(
                time.perf_counter() - began
            )
            # A model name is client text: only names being served become label values,
            # anything else is "other", so no request can grow the series without bound.
            model = self._model(scope, endpoint)
            if model and model not in self.known_models():
                model = "other"
            self.metrics.requests.labels(endpoint=endpoint, model=model, status=str(status)).inc()
