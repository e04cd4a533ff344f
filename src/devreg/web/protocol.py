"""uvicorn's httptools protocol with the limits a server facing the internet needs, used by
every listener (plain, client-auth, EST).

uvicorn bounds neither the request head (httptools has no header size limit) nor the time
a client may take to send it: a client that connects and sends nothing, or trickles a
header byte a second, holds its connection forever. Here:

- the request head (request line and headers) is at most `MAX_HEAD_BYTES` in at most
  `MAX_HEADERS` headers, else 431;
- it must arrive within `head_timeout` seconds: from the connection's start (after the
  TLS handshake) for the first request, from its first byte for the next ones on a
  kept-alive connection (idle keep-alive is uvicorn's `timeout_keep_alive`); a partial
  head is answered 408, a connection that sent nothing is closed;
- a request body must arrive within `body_timeout` seconds of its head, else 408;
- at most `max_connections` connections per process: one more closes the connection that
  has waited longest without a request in progress (an idle keep-alive one, or one still
  sending its head), or, when every connection is busy, the new one.

Refusals that the protocol makes (the app never saw the request) are rendered by the
`Refusals` hook, so that a client still gets its dialect's error envelope, with
`connection: close`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from devreg.web.errors import HttpError
from devreg.web.response import Response

log = logging.getLogger("devreg.limits")

MAX_HEAD_BYTES = 32 * 1024
MAX_HEADERS = 100
HEAD_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
MAX_CONNECTIONS = 2048

# Where the parser is in the connection's current request.
_IDLE, _HEAD, _BODY = 0, 1, 2
_WARN_EVERY = 10.0  # seconds between two "connection limit reached" warnings


@dataclass(frozen=True)
class Limits:
    head_timeout: float = HEAD_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    max_connections: int = MAX_CONNECTIONS


class Refusals(Protocol):
    def __call__(self, client: str, method: str, path: str, error: HttpError) -> Response:
        """The answer to a request refused before it reached the app (and its log line)."""


def plain_refusal(client: str, method: str, path: str, error: HttpError) -> Response:
    return Response(
        error.status, (error.message + "\n").encode(), b"text/plain; charset=utf-8", error.headers
    )


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[Limits] = Limits()
    refusals: ClassVar[Refusals] = plain_refusal

    @classmethod
    def configure(
        cls, limits: Limits, refusals: Refusals | None = None
    ) -> type[LimitedHttpToolsProtocol]:
        """This protocol class with these limits (and refusal renderer)."""
        attributes: dict[str, Any] = {"limits": limits}
        if refusals is not None:
            attributes["refusals"] = staticmethod(refusals)
        return type(cls.__name__, (cls,), attributes)

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.waiting = _waiting(server_state)
        self.phase = _IDLE
        self.head_bytes = 0
        self.deadline: asyncio.TimerHandle | None = None
        self.deadline_phase = _IDLE
        self.refused = False

    # --- the connection ---------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self._make_room():
            self.refused = True
            transport.close()
            return
        self.waiting[self] = None
        self._arm(_HEAD, self.limits.head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.waiting.pop(self, None)
        self._disarm()
        super().connection_lost(exc)

    def _make_room(self) -> bool:
        """Close the connection that waited longest without a request in progress."""
        _warn_full(self.limits.max_connections)
        while self.waiting:
            victim = next(iter(self.waiting))
            del self.waiting[victim]
            if not victim.transport.is_closing():
                victim.refused = True
                victim._disarm()
                victim.transport.close()
                return True
        return False

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self.phase != _BODY:
            self.head_bytes += len(data)
        super().data_received(data)
        if self.refused or self.transport.is_closing():
            return
        phase = self.phase
        if phase == _HEAD:
            if self.head_bytes > MAX_HEAD_BYTES:
                self.refuse(_head_too_large())
            elif self.deadline is None:
                self._arm(_HEAD, self.limits.head_timeout)
        elif phase == _BODY:
            if self.deadline_phase != _BODY:
                self._arm(_BODY, self.limits.body_timeout)
        elif self.head_bytes and self.deadline is None:
            # Bytes that began no request (blank lines, which the parser skips): they
            # stopped uvicorn's keep-alive clock, so the head's clock runs instead.
            self._arm(_HEAD, self.limits.head_timeout)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to what httptools cannot parse, in the dialect's envelope too
        self.refuse(HttpError(400, "malformed_request", msg))

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.phase == _IDLE and not self.pipeline:
            self.waiting[self] = None  # kept alive and idle: the first to go when full

    # --- parser callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.refused:
            return
        self.phase = _HEAD
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        if self.refused:
            return
        if (self.head_bytes > MAX_HEAD_BYTES or len(self.headers) > MAX_HEADERS) and (
            len(self.headers) > MAX_HEADERS
            or len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) > MAX_HEAD_BYTES
        ):  # the raw count may include the body that came with the head: count exactly
            self.refuse(_head_too_large())
            return
        self.phase = _BODY
        self.head_bytes = 0
        self.waiting.pop(self, None)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        self.phase = _IDLE
        self.head_bytes = 0
        self._disarm()
        super().on_message_complete()

    # --- deadlines and refusals -------------------------------------------------------

    def _arm(self, phase: int, seconds: float) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline_phase = phase
        self.deadline = self.loop.call_later(seconds, self._deadline_passed)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.deadline_phase = _IDLE

    def _deadline_passed(self) -> None:
        self.deadline = None
        if self.refused or self.transport.is_closing():
            return
        cycle = self.cycle
        if self.phase != _BODY and cycle is not None and not cycle.response_complete:
            # behind a request still being answered: the next one's time starts later
            self._arm(_HEAD, self.limits.head_timeout)
            return
        if self.phase == _HEAD:
            timeout, what = self.limits.head_timeout, "head"
        elif self.phase == _BODY and self.pipeline:
            self._arm(_BODY, self.limits.body_timeout)  # queued behind another request
            return
        elif self.phase == _BODY and not (cycle is not None and cycle.response_started):
            timeout, what = self.limits.body_timeout, "body"
        else:  # nothing sent at all, or the answer is already on its way: just close
            self.refused = True
            self.waiting.pop(self, None)
            self.transport.close()
            return
        message = f"The request {what} did not arrive within {timeout:g} s"
        self.refuse(HttpError(408, "request_timeout", message))

    def refuse(self, error: HttpError) -> None:
        """Answer `error` in place of the request (which the app never sees), and close."""
        self.refused = True
        self._disarm()
        self.waiting.pop(self, None)
        if self.transport.is_closing():
            return
        method, path = self._request_so_far()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
        try:
            response = self.refusals(client, method, path, error)
        except Exception:  # the refusal must go out whatever the renderer does
            log.exception("rendering a refusal failed")
            response = plain_refusal(client, method, path, error)
        head = [
            STATUS_LINE[response.status],
            b"content-type: " + response.content_type + b"\r\n",
            b"content-length: " + str(len(response.body)).encode() + b"\r\n",
            b"x-content-type-options: nosniff\r\n",  # as on every answer (web/response.py)
        ]
        head += [name + b": " + value + b"\r\n" for name, value in response.headers]
        head += [b"connection: close\r\n\r\n", response.body]
        self.transport.write(b"".join(head))
        self.transport.close()

    def _request_so_far(self) -> tuple[str, str]:
        """The method and path of the request being refused, as far as they arrived."""
        if self.phase == _IDLE or not self.url:
            return "-", "/"
        try:
            method = self.parser.get_method().decode("ascii", "replace")
        except (httptools.HttpParserError, AttributeError):
            method = "-"
        raw = self.url[:2048].split(b"?", 1)[0].decode("latin-1")
        return method, urllib.parse.unquote(raw) or "/"


def _head_too_large() -> HttpError:
    return HttpError(
        431,
        "request_header_fields_too_large",
        f"The request head is larger than {MAX_HEAD_BYTES} bytes"
        f" or has more than {MAX_HEADERS} headers",
    )


def _waiting(server_state: Any) -> dict[LimitedHttpToolsProtocol, None]:
    """The process's connections without a request in progress, oldest first (one map for
    all the listeners sharing `server_state`)."""
    waiting: dict[LimitedHttpToolsProtocol, None] | None = getattr(
        server_state, "devreg_waiting", None
    )
    if waiting is None:
        waiting = {}
        server_state.devreg_waiting = waiting
    return waiting


_last_warning = [0.0]


def _warn_full(limit: int) -> None:
    now = time.monotonic()
    if now - _last_warning[0] >= _WARN_EVERY:
        _last_warning[0] = now
        log.warning("%d connections open (the limit): closing the longest-waiting idle ones", limit)
