"""The graceful drain: its shared state, the probe paths that bypass it, and the gate.

On SIGTERM the server (`service.__main__.Server`) starts the drain: `/readyz`
answers 503 so balancers stop sending, new requests get 503 + Retry-After, and
uvicorn stops only once the requests in flight are answered.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from service.http_errors import send_error
from service.middleware import ASGIApp, Receive, Scope, Send

# Probes keep answering during a drain: a balancer must see /readyz say 503 until the end.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"})


@dataclass
class Drain:
    """Shutdown state shared by the drain gate, /readyz and the server's signal handler."""

    started: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0  # requests (not probes) being answered; changed on the event loop only


class DrainMiddleware:
    """Counts requests in flight; once draining starts, refuses new work with 503.

    After SIGTERM the process keeps its socket open (see `service.__main__`) so
    probes get an answer (503 on /readyz) instead of "connection refused"; new
    requests are told to go elsewhere (503 + Retry-After) while the ones already
    in flight finish.
    """

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        if self.drain.started.is_set():
            await send_error(
                send,
                503,
                "the service is shutting down; retry, another replica will answer",
                headers=[(b"retry-after", b"1")],
            )
            return
        self.drain.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain.in_flight -= 1
