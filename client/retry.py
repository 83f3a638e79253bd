"""Errors and the retry policy: `Retry-After` on 503/429 is honoured, within bounds."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Any

import httpx

RETRY_STATUSES = frozenset({429, 503})


class ApiError(Exception):
    """An error answer of the service: its status and its JSON `error` message."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message, self.body = status, message, body

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:  # not JSON (a proxy's HTML page, say)
            return cls(response.status_code, response.text[:500] or response.reason_phrase)
        message = body.get("error") if isinstance(body, dict) else None
        return cls(response.status_code, str(message or body), body)


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_attempts` tries, and at most `max_total_wait_s` seconds spent waiting.

    A 503 or 429 is retried after its `Retry-After` (seconds or an HTTP date), or after
    `default_wait_s` without one; a wait that would pass `max_total_wait_s` is not made:
    the error is raised instead.
    """

    max_attempts: int = 4
    max_total_wait_s: float = 30.0
    default_wait_s: float = 1.0

    def wait_before_retry(
        self, response: httpx.Response, attempt: int, waited_s: float
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        if response.status_code not in RETRY_STATUSES or attempt >= self.max_attempts:
            return None
        wait = retry_after_s(response.headers.get("Retry-After"), self.default_wait_s)
        if waited_s + wait > self.max_total_wait_s:
            return None
        return wait


def retry_after_s(value: str | None, default: float, now: float | None = None) -> float:
    """`Retry-After` in seconds: a number of seconds or an HTTP date (RFC 9110)."""
    if value is None:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return default
    return max(0.0, when - (time.time() if now is None else now))
