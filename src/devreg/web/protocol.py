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
  sending its head), else the oldest one still sending a body, else the oldest one whose
  client is not reading its answer, or, when every connection is being answered, the new
  one (`web/connections.py`);
- at most `max_per_address` of them from one client address (an IPv6 /64), trusted
  proxies apart: one more is closed at once;
- an answer sent before the request's body has arrived (a refusal that never reads it)
  ends the connection (`connection: close`) instead of waiting for the body;
- the output must drain: a connection whose answer sits in its buffer, unread, for
  `drain_timeout` seconds is dropped, and a pipelined request is not started while the
  previous answer has not drained (so one connection holds at most one answer); when the
  stalled connections' buffers add up to more than `max_output_buffer` bytes, the oldest
  of them are dropped until they fit.

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

from devreg.web.connections import ConnectionTable, Network, address_key, exempt
from devreg.web.errors import HttpError
from devreg.web.response import Response

log = logging.getLogger("devreg.limits")

MAX_HEAD_BYTES = 32 * 1024
MAX_HEADERS = 100
HEAD_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
MAX_CONNECTIONS = 2048
MAX_PER_ADDRESS = 256
DRAIN_TIMEOUT = 30.0
MAX_OUTPUT_BUFFER = 256 * 1024 * 1024  # bytes held for stalled clients, all together
MAX_PIPELINED = 16  # requests queued behind the one being answered, per connection

# Where the parser is in the connection's current request.
_IDLE, _HEAD, _BODY = 0, 1, 2
_WARN_EVERY = 10.0  # seconds between two "connection limit reached" warnings


@dataclass(frozen=True)
class Limits:
    head_timeout: float = HEAD_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    max_connections: int = MAX_CONNECTIONS
    max_per_address: int = MAX_PER_ADDRESS  # 0: no limit per address
    drain_timeout: float = DRAIN_TIMEOUT
    max_output_buffer: int = MAX_OUTPUT_BUFFER
    exempt_networks: tuple[Network, ...] = ()  # not limited per address (trusted proxies)


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
        self.table = _table(server_state)
        self.waiting = self.table.waiting
        self.phase = _IDLE
        self.head_bytes = 0
        self.deadline: asyncio.TimerHandle | None = None
        self.deadline_phase = _IDLE
        self.drain_deadline: asyncio.TimerHandle | None = None
        self.address: str | None = None  # counted per address under this key
        self.deferred = False  # a pipelined request waits for the previous answer to drain
        self.last_answer_size = 0
        self.running: Any = None  # the request being answered (uvicorn's cycle)
        self.refused = False

    # --- the connection ---------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if not self._admit_address() or (
            len(self.connections) > self.limits.max_connections and not self._make_room()
        ):
            self.refused = True
            transport.close()
            return
        self.waiting[self] = None
        self._arm(_HEAD, self.limits.head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        # uvicorn tells only the newest request that the client is gone; one answered
        # before it and waiting for the output to drain would then write to the closed
        # transport and log a traceback for every dropped connection.
        running = self.running
        if running is not None and not running.response_complete:
            running.disconnected = True
            running.message_event.set()
        self.table.forget(self)
        if self.address is not None:
            self.table.release(self.address)
            self.address = None
        self._disarm()
        self._disarm_drain()
        super().connection_lost(exc)

    def _admit_address(self) -> bool:
        limit = self.limits.max_per_address
        if not limit or not self.client or exempt(self.client[0], self.limits.exempt_networks):
            return True
        key = address_key(self.client[0])
        if not self.table.admit(key, limit):
            _warn(
                f"{limit} connections open from {key} (the limit per address): closing more",
                kind="per-address",
            )
            return False
        self.address = key
        return True

    def _make_room(self) -> bool:
        """Close the connection that costs least to lose (`ConnectionTable`)."""
        _warn(
            f"{self.limits.max_connections} connections open (the limit): closing the"
            " longest-waiting idle, uploading or unread ones"
        )
        victim = self.table.oldest_evictable()
        if victim is None:
            return False
        victim.drop()  # a closing one too: it may be waiting for output nobody reads
        return True

    def drop(self) -> None:
        """End this connection now, without an answer, discarding any unsent output."""
        self.refused = True
        self.table.forget(self)
        self._disarm()
        self._disarm_drain()
        self.transport.abort()

    # --- output that does not drain ---------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        self.table.stalled[self] = None
        self._disarm_drain()  # the time runs from this pause
        self._arm_drain()
        self._fit_output_budget()

    def resume_writing(self) -> None:
        super().resume_writing()
        self.table.stalled.pop(self, None)
        self._disarm_drain()  # progress: the client read down to the low-water mark
        if self.transport.get_write_buffer_size():
            self._arm_drain()  # the rest has the full time again
        if self.deferred:
            self.deferred = False
            if self.pipeline and not self.transport.is_closing():
                self.flow.resume_reading()
                self._start_asgi_task(*self.pipeline.pop())

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if self.flow.write_paused:
            # The previous answer is still in the buffer: this one waits for it to drain
            # instead of being made (and held in memory) now.
            self.pipeline.append((cycle, app))
            self.flow.pause_reading()
            self.deferred = True
            return
        # An answer started before the request's body has all arrived (a refusal that does
        # not read it): the rest would have to be read and thrown away, so the connection
        # ends with the answer instead of waiting for the body.
        send = cycle.send

        async def send_closing(message: Any) -> None:
            if message["type"] == "http.response.body":
                self.last_answer_size = len(message.get("body", b""))
            elif cycle.more_body and message["type"] == "http.response.start":
                cycle.keep_alive = False
            await send(message)

        cycle.send = send_closing
        self.running = cycle
        super()._start_asgi_task(cycle, app)

    def _arm_drain(self) -> None:
        if self.drain_deadline is None:
            self.drain_deadline = self.loop.call_later(self.limits.drain_timeout, self._not_drained)

    def _not_drained(self) -> None:
        # Also when closing: a transport closed with output pending (after a refusal, a
        # deadline or `connection: close`) waits for the output to be read, however long.
        self.drain_deadline = None
        if not (self.flow.write_paused or self.transport.get_write_buffer_size()):
            return
        _warn(
            f"a client did not read its answer within {self.limits.drain_timeout:g} s:"
            " dropping such connections"
        )
        self.drop()

    def held_output(self) -> int:
        """The memory this connection's unsent output holds: the transport's buffer keeps
        the whole of the last answer alive while any of it is unsent."""
        return max(self.transport.get_write_buffer_size(), self.last_answer_size)

    def _disarm_drain(self) -> None:
        if self.drain_deadline is not None:
            self.drain_deadline.cancel()
            self.drain_deadline = None

    def _fit_output_budget(self) -> None:
        stalled = self.table.stalled
        held = sum(c.held_output() for c in stalled)
        while held > self.limits.max_output_buffer and stalled:
            victim = next(iter(stalled))
            held -= victim.held_output()
            _warn(
                f"unread answers hold more than {self.limits.max_output_buffer} bytes:"
                " dropping the oldest stalled connections"
            )
            victim.drop()

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
        if self.transport.get_write_buffer_size():
            # Output left in the buffer, below the high-water mark (so no pause_writing), and
            # perhaps a close waiting for it: it too must drain in time.
            self._arm_drain()
            if self.transport.is_closing():
                self.table.stalled[self] = None
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
        if len(self.pipeline) >= MAX_PIPELINED:
            # uvicorn queues every pipelined request of a read, and reads again after each
            # answer: without a cap, one connection sending small requests back to back
            # makes thousands of queued requests (measured: 16 MB sent, ~1 GB held).
            _warn(
                f"a client pipelined more than {MAX_PIPELINED} requests: dropping such connections"
            )
            self.drop()
            return
        self.phase = _BODY
        self.head_bytes = 0
        self.waiting.pop(self, None)
        self.table.uploading[self] = None
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        self.phase = _IDLE
        self.head_bytes = 0
        self.table.uploading.pop(self, None)
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
            self.table.forget(self)
            self.transport.close()
            return
        message = f"The request {what} did not arrive within {timeout:g} s"
        self.refuse(HttpError(408, "request_timeout", message))

    def refuse(self, error: HttpError) -> None:
        """Answer `error` in place of the request (which the app never sees), and close."""
        self.refused = True
        self._disarm()
        self.table.forget(self)
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


def _table(server_state: Any) -> ConnectionTable[LimitedHttpToolsProtocol]:
    """The process's connection table (one for all the listeners sharing `server_state`)."""
    table: ConnectionTable[LimitedHttpToolsProtocol] | None = getattr(
        server_state, "devreg_connections", None
    )
    if table is None:
        table = ConnectionTable()
        server_state.devreg_connections = table
    return table


_last_warning: dict[str, float] = {}


def _warn(message: str, kind: str | None = None) -> None:
    """Log `message` at most once every `_WARN_EVERY` seconds per kind (an attack repeats
    it); the kind is the message unless it names something that varies."""
    kind = kind or message
    now = time.monotonic()
    if now - _last_warning.get(kind, -_WARN_EVERY) >= _WARN_EVERY:
        _last_warning[kind] = now
        log.warning("%s", message)
