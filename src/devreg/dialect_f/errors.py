"""Every failure, rendered once as seed 000's error object."""

from __future__ import annotations

import logging

from devreg.core.clock import now_us, render_rfc3339
from devreg.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    LimitReached,
    NotFound,
    QuotaExceeded,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from devreg.core.store import StorageFull
from devreg.dialect_f.shapes import ErrorOut
from devreg.web.errors import HttpError
from devreg.web.response import Response, json_response

log = logging.getLogger("devreg.error")


class UnsupportedVersion(Exception):
    def __init__(self, version: str) -> None:
        super().__init__(version)
        self.version = version


def error_response(
    status: int,
    type_: str,
    code: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Response:
    body = ErrorOut(
        object="error",
        type=type_,
        code=code,
        message=message,
        time_created=render_rfc3339(now_us()),
    )
    return json_response(status, body, headers)


def render_error(exc: Exception) -> Response:
    # The seed has no 401: every credential problem is a 403 access_denied.
    if isinstance(exc, Unauthenticated | Forbidden):
        return error_response(403, "invalid_request", "access_denied", exc.message)
    if isinstance(exc, NotFound):
        return error_response(404, "invalid_request", "not_found", exc.message)
    if isinstance(exc, InvalidInput):
        code = "invalid_json" if exc.field == "body" else "invalid_parameter"
        return error_response(400, "invalid_request", code, exc.message)
    if isinstance(exc, QuotaExceeded):
        return error_response(409, "invalid_request", "quota_exceeded", exc.message)
    if isinstance(exc, Conflict | LimitReached):
        return error_response(409, "conflict", exc.code, exc.message)
    if isinstance(exc, RateLimited):
        return error_response(
            429,
            "rate_limit",
            "too_many_requests",
            exc.message,
            [(b"retry-after", str(exc.retry_after).encode())],
        )
    if isinstance(exc, UnsupportedVersion):
        return error_response(
            422,
            "invalid_request",
            "api_version_not_supported",
            f"Flatpeak-Version {exc.version[:64]!r} is not supported: send"
            " 2025-09-14.anode or omit the header",
        )
    if isinstance(exc, StorageFull):  # logged once per episode, by the store
        return error_response(
            507,
            "api_error",
            "insufficient_storage",
            exc.message,
            [(b"retry-after", str(exc.retry_after).encode())],
        )
    if isinstance(exc, Unavailable):
        log.warning("service unavailable: %s", exc.message)
        return error_response(
            503,
            "api_error",
            "service_unavailable",
            "The service is temporarily unavailable; retry shortly",
            [(b"retry-after", b"1")],
        )
    if isinstance(exc, HttpError):
        return error_response(exc.status, "invalid_request", exc.code, exc.message, exc.headers)
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "api_error", "internal_error", "Internal error")
