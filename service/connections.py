"""Connection hygiene under uvicorn: header timeout, connection cap, open-file limit, quiet accepts.

uvicorn (h11 or httptools) times out an idle keep-alive connection, but a socket
that connects and never finishes its request headers is kept forever, and its
`limit_concurrency` answers a plain-text 503 without `Retry-After`. So, as
nginx (`client_header_timeout`, `limit_conn`) does in front of a service:

- `guarded_protocol` wraps uvicorn's HTTP protocol class: a connection that has
  not sent complete request headers within `header_timeout_s` of opening (or of
  its previous response) is closed; a connection opened while `max_connections`
  are open gets a JSON 503 with `Retry-After` to its request, then is closed;
- `raise_open_file_limit` lifts the soft RLIMIT_NOFILE to the hard limit at
  start-up (systemd's default soft limit is 1024), and `connection_cap` keeps
  the cap below it, so the process never runs out of descriptors for accepts,
  model files or its own probes;
- `quiet_accept_errors` turns asyncio's accept-error traceback (one per retry
  when descriptors do run out) into one line per interval with a count.

The per-request body deadline (408) lives with the body cap in
`service.middleware.BodyLimitMiddleware`.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string

from service.http_errors import send_error

log = logging.getLogger(__name__)
# Descriptors kept free under the open-file limit for everything that is not a client
# connection: model files, the log, TensorFlow's and the event loop's own descriptors.
RESERVED_FILE_DESCRIPTORS = 128
REFUSAL_RETRY_AFTER_S = 1
ACCEPT_ERROR_LOG_INTERVAL_S = 10.0


def raise_open_file_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit; returns (before, after) and logs them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:  # a container may forbid it
            log.warning(
                "open files limit stays %d (raising it to %d failed: %s)", soft, target, exc
            )
            return soft, soft
    after = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    log.info("open files limit: %d (was %d, hard limit %s)", after, soft, hard)
    return soft, after


def connection_cap(max_connections: int, open_file_limit: int) -> int:
    """`max_connections`, lowered (with a warning) to what the open-file limit can hold."""
    room = max(1, open_file_limit - RESERVED_FILE_DESCRIPTORS)
    if max_connections > room:
        log.warning(
            "max_connections %d lowered to %d: the open files limit is %d (raise it with "
            "`ulimit -n` or the container's nofile limit)",
            max_connections,
            room,
            open_file_limit,
        )
        return room
    return max_connections


async def _refuse(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI answer to a request on a connection over the cap: JSON 503 + Retry-After."""
    await send_error(
        send,
        503,
        "too many open connections to this replica; retry shortly or use another replica",
        [(b"retry-after", str(REFUSAL_RETRY_AFTER_S).encode())],
    )


class _RateLimitedWarning:
    """Logs a recurring event at most once per interval, with how often it happened."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last = -float("inf")
        self._count = 0

    def __call__(self, message: str, *args: object) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            log.warning(message + " (%d time(s) since the last report)", *args, self._count)
            self._last = now
            self._count = 0


def guarded_protocol(http: str, header_timeout_s: float, max_connections: int) -> type:
    """uvicorn's protocol class for `http` (auto | h11 | httptools) with the two guards."""
    base: type = import_from_string(HTTP_PROTOCOLS[http])
    over_cap_warning = _RateLimitedWarning(ACCEPT_ERROR_LOG_INTERVAL_S)

    class GuardedProtocol(base):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            over_cap = len(self.connections) >= max_connections
            super().connection_made(transport)
            if over_cap:
                # Answered (not dropped), so the client reads a reason instead of a reset;
                # the header timeout still closes it if it never sends a request.
                self.app = _refuse
                over_cap_warning(
                    "connection cap reached (%d open): refusing new ones with 503",
                    max_connections,
                )
            self._arm_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_timer()  # the next request's headers are due in time too

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_overdue)

        def _headers_overdue(self) -> None:
            self._header_timer = None
            in_flight = self.cycle is not None and not self.cycle.response_complete
            if not in_flight and not self.transport.is_closing():
                # No request is being answered and none has arrived in time: a client that
                # connects and waits (or trickles header bytes) holds nothing for long.
                self.transport.close()

    GuardedProtocol.__name__ = f"Guarded{base.__name__}"
    return GuardedProtocol


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Report asyncio's accept failures (out of descriptors) as one line per interval.

    asyncio logs each failed accept with a full traceback and retries a second later;
    a flood of connections past the open-file limit would write megabytes a second.
    Every other loop error goes to the handler that was there before.
    """
    previous = loop.get_exception_handler()
    warn = _RateLimitedWarning(ACCEPT_ERROR_LOG_INTERVAL_S)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "accept" in str(context.get("message", "")):
            warn(
                "cannot accept connections: %s; the open files limit is %d",
                context.get("exception") or context.get("message"),
                resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def uvicorn_options(
    http: str, header_timeout_s: float, keep_alive_timeout_s: float, max_connections: int
) -> dict[str, Any]:
    """The uvicorn.Config arguments of the connection limits (after the open-file limit)."""
    cap = connection_cap(max_connections, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    return {
        "http": guarded_protocol(http, header_timeout_s, cap),
        "timeout_keep_alive": keep_alive_timeout_s,
        # Beyond the cap uvicorn's own backlog queues connections in the kernel, not in us.
        "backlog": min(2048, cap),
    }
