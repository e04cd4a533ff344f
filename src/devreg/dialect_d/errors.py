"""Every failure, rendered once as seed 003's `{"errors": [{"code", "message"}]}`."""

from __future__ import annotations

import logging

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
from devreg.dialect_d.shapes import ErrorItem, ErrorsOut
from devreg.web.errors import HttpError
from devreg.web.response import Response, json_response

log = logging.getLogger("devreg.error")


def error_response(
    status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> Response:
    return json_response(status, ErrorsOut(errors=[ErrorItem(code=code, message=message)]), headers)


# DigiCert ONE's own names for protocol-level failures, where its error page gives one.
DIGICERT_CODES = {"not_found": "resource_not_found"}


def render_error(exc: Exception) -> Response:
    if isinstance(exc, InvalidInput | Conflict):
        # Seed 003 reports a taken device_identifier like any other invalid input.
        return error_response(400, "invalid_input", exc.message)
    if isinstance(exc, QuotaExceeded):
        return error_response(409, "quota_exceeded", exc.message)
    if isinstance(exc, NotFound):
        # The seed answers an unknown device with 400 entity_not_found, not 404.
        return error_response(400, "entity_not_found", exc.message)
    if isinstance(exc, LimitReached):
        return error_response(409, exc.code, exc.message)
    if isinstance(exc, Unauthenticated):
        return error_response(401, "invalid_api_key", exc.message)
    if isinstance(exc, Forbidden):
        return error_response(403, "access_denied", exc.message)
    if isinstance(exc, RateLimited):
        return error_response(
            429, "rate_limit_exceeded", exc.message,
            [(b"retry-after", str(exc.retry_after).encode())],
        )  # fmt: skip
    if isinstance(exc, StorageFull):  # logged once per episode, by the store
        return error_response(
            507, "insufficient_storage", exc.message,
            [(b"retry-after", str(exc.retry_after).encode())],
        )  # fmt: skip
    if isinstance(exc, Unavailable):
        log.warning("service unavailable: %s", exc.message)
        return error_response(
            503, "service_unavailable", "The service is temporarily unavailable; retry shortly",
            [(b"retry-after", b"1")],
        )  # fmt: skip
    if isinstance(exc, HttpError):
        code = DIGICERT_CODES.get(exc.code, exc.code)
        return error_response(exc.status, code, exc.message, exc.headers)
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "Internal error")
