"""EST answers errors in plain text (RFC 7030 section 4.2.3), with the usual statuses."""

from __future__ import annotations

import logging

from devreg.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    LimitReached,
    NotFound,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from devreg.core.store import StorageFull
from devreg.web.errors import HttpError
from devreg.web.response import Response

log = logging.getLogger("devreg.error")
TEXT = b"text/plain; charset=utf-8"


def _text(status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    return Response(status, (message + "\n").encode(), TEXT, headers)


def render_error(exc: Exception) -> Response:
    if isinstance(exc, InvalidInput | Conflict):
        return _text(400, exc.message)
    if isinstance(exc, LimitReached):
        return _text(409, exc.message)
    if isinstance(exc, Unauthenticated):
        return _text(401, exc.message, [(b"www-authenticate", b'Basic realm="devreg EST"')])
    if isinstance(exc, Forbidden):
        return _text(403, exc.message)
    if isinstance(exc, NotFound):
        return _text(404, exc.message)
    if isinstance(exc, RateLimited):
        return _text(429, exc.message, [(b"retry-after", str(exc.retry_after).encode())])
    if isinstance(exc, StorageFull):  # logged once per episode, by the store
        return _text(507, exc.message, [(b"retry-after", str(exc.retry_after).encode())])
    if isinstance(exc, Unavailable):
        return _text(503, "The service is temporarily unavailable; retry shortly",
                     [(b"retry-after", b"1")])  # fmt: skip
    if isinstance(exc, HttpError):
        return _text(exc.status, exc.message, exc.headers)
    log.exception("unhandled error", exc_info=exc)
    return _text(500, "Internal error")
