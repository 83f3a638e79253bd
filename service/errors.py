"""Domain errors of the service, each with the HTTP status it maps to.

No FastAPI here: the repository, batcher and request parsing raise these and
`service.http_errors` turns them into `{"error": ..., "status": ...}` responses.
"""

from __future__ import annotations

from typing import Any

from imaging.decode import CorruptImageError, ImageError, ImageTooLargeError, NotAnImageError


def error_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    """The one error shape of every failure: `{"error": "<what to do>", "status": <code>}`."""
    return {"error": message, "status": status, **extra}


class ServiceError(Exception):
    """An error a client can act on; `status` is the HTTP status code."""

    status = 400
    headers: dict[str, str] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServiceError):
    status = 400


class Unauthorized(ServiceError):
    status = 401
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(ServiceError):
    status = 403


class ModelNotFound(ServiceError):
    status = 404


class MethodNotAllowed(ServiceError):
    status = 405

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.headers = {"Allow": allow}


class Conflict(ServiceError):
    """The request is valid but the model version cannot do it (e.g. explain, when it was
    exported without an explanation signature)."""

    status = 409


class PayloadTooLarge(ServiceError):
    status = 413


class UnsupportedMedia(ServiceError):
    status = 415


class Unprocessable(ServiceError):
    status = 422


class NotReady(ServiceError):
    status = 503

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


class Overloaded(NotReady):
    """The batch queue is full: come back shortly rather than wait without limit."""


class InferenceTimeout(ServiceError):
    status = 504


_IMAGE_STATUS: dict[type[ImageError], int] = {
    NotAnImageError: 415,
    ImageTooLargeError: 413,
    CorruptImageError: 422,
}


def image_error_status(exc: ImageError) -> int:
    """The HTTP status of an `imaging` decode error (422 for any other ImageError)."""
    for kind, status in _IMAGE_STATUS.items():
        if isinstance(exc, kind):
            return status
    return 422


def from_image_error(exc: ImageError, filename: str | None = None) -> ServiceError:
    where = f"{filename}: " if filename else ""
    error = ServiceError(f"{where}{exc}")
    error.status = image_error_status(exc)
    return error
