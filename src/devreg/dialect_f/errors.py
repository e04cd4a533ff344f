"""Every failure, rendered once as Flatpeak's whole error object: seed 000's fields plus
`live_mode` (the caller's mode, false when no valid credential was shown) and `context`
(where it failed: `api.device_update`, or `api` outside any endpoint)."""

from __future__ import annotations

import logging

from devreg.core.clock import now_us, render_rfc3339
from devreg.core.errors import (
    AccountDisabled,
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
from devreg.core.versions import DEFAULT_VERSION, VersionRefused
from devreg.dialect_f.shapes import ErrorOut
from devreg.web.errors import HttpError
from devreg.web.response import Response, json_response

log = logging.getLogger("devreg.error")

API_CONTEXT = "api"  # unknown paths, wrong methods, version errors, devreg's own endpoints


def error_response(
    status: int,
    type_: str,
    code: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    context: str = API_CONTEXT,
    live_mode: bool = False,
) -> Response:
    body = ErrorOut(
        object="error",
        live_mode=live_mode,
        context=context,
        type=type_,
        code=code,
        message=message,
        time_created=render_rfc3339(now_us()),
    )
    return json_response(status, body, headers)


def render_error(exc: Exception) -> Response:
    """Outside every dialect F handler (an unknown path, a wrong method, a head the server
    refused): context `api`, no credential looked at, the default version named."""
    response = render_failure(exc, context=API_CONTEXT, live_mode=False)
    response.headers = [*response.headers, (b"flatpeak-version", DEFAULT_VERSION.encode())]
    return response


def render_failure(exc: Exception, *, context: str, live_mode: bool) -> Response:
    """`exc` as the error object, in the caller's mode, naming where it failed."""

    def out(
        status: int,
        type_: str,
        code: str,
        message: str,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> Response:
        return error_response(
            status, type_, code, message, headers, context=context, live_mode=live_mode
        )

    if isinstance(exc, VersionRefused):  # judged before any endpoint's work: context api
        return error_response(
            422,
            "invalid_request",
            "api_version_not_supported",
            exc.message,
            live_mode=live_mode,
        )
    if isinstance(exc, AccountDisabled):  # Flatpeak's own answer, on any endpoint
        return out(422, "api_error", "account_disabled", "Your account is disabled")
    # The seed has no 401: every credential problem is a 403 access_denied.
    if isinstance(exc, Unauthenticated | Forbidden):
        return out(403, "invalid_request", "access_denied", exc.message)
    if isinstance(exc, NotFound):
        return out(404, "invalid_request", "not_found", exc.message)
    if isinstance(exc, InvalidInput):
        code = "invalid_json" if exc.field == "body" else "invalid_parameter"
        return out(400, "invalid_request", code, exc.message)
    if isinstance(exc, QuotaExceeded):
        return out(409, "invalid_request", "quota_exceeded", exc.message)
    if isinstance(exc, Conflict | LimitReached):
        return out(409, "conflict", exc.code, exc.message)
    if isinstance(exc, RateLimited):
        return out(
            429,
            "rate_limit",
            "too_many_requests",
            exc.message,
            [(b"retry-after", str(exc.retry_after).encode())],
        )
    if isinstance(exc, StorageFull):  # logged once per episode, by the store
        return out(
            507,
            "api_error",
            "insufficient_storage",
            exc.message,
            [(b"retry-after", str(exc.retry_after).encode())],
        )
    if isinstance(exc, Unavailable):
        log.warning("service unavailable: %s", exc.message)
        return out(
            503,
            "api_error",
            "service_unavailable",
            "The service is temporarily unavailable; retry shortly",
            [(b"retry-after", b"1")],
        )
    if isinstance(exc, HttpError):
        return out(exc.status, "invalid_request", exc.code, exc.message, exc.headers)
    log.exception("unhandled error", exc_info=exc)
    return out(500, "api_error", "internal_error", "Internal error")
