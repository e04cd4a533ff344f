"""The request as handlers see it: method, path, headers, query, a size-limited body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from devreg.core.errors import InvalidInput
from devreg.web.errors import payload_too_large
from devreg.web.request_id import request_id_of

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 1024 * 1024
MAX_QUERY_PARAMS = 32


class Request:
    __slots__ = (
        "_body", "_receive", "after_body", "credential", "method", "path", "path_params",
        "request_id", "scope",
    )  # fmt: skip

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        self._body: bytes | None = None  # once read (the receive channel gives it once)
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.path_params: dict[str, str] = {}
        self.credential: str | None = None  # set once authenticated, for the access log
        # The credential's check again, once the body has arrived (set by the dialect that
        # authenticated the request): what was revoked while a body was still coming is
        # refused before anything is done with it.
        self.after_body: Callable[[], Awaitable[object]] | None = None
        self.request_id: str = request_id_of(scope["headers"])

    def header(self, name: bytes) -> str | None:
        """The first value of header `name` (lowercase), decoded as latin-1 per RFC 9110."""
        for key, value in self.scope["headers"]:
            if key == name:
                return str(value.decode("latin-1"))
        return None

    def credential_header(self, name: bytes) -> str | None:
        """Header `name` (lowercase) that carries a credential: given twice, which one
        counts would be up to each proxy and server on the way, so the request is refused."""
        found: str | None = None
        for key, value in self.scope["headers"]:
            if key == name:
                if found is not None:
                    header = name.decode()
                    raise InvalidInput(f"The {header} header is given more than once", header)
                found = str(value.decode("latin-1"))
        return found

    def query(self) -> dict[str, str]:
        """Query parameters; each may appear once."""
        raw = self.scope.get("query_string", b"").decode("latin-1")
        if not raw:
            return {}
        check_query_size(raw.count("&") + 1)
        try:
            pairs = parse_qsl(
                raw, keep_blank_values=True, strict_parsing=True, max_num_fields=MAX_QUERY_PARAMS
            )
        except ValueError as exc:
            raise InvalidInput(f"Query string is malformed: {exc}", "query") from None
        params: dict[str, str] = {}
        for key, value in pairs:
            if key in params:
                raise InvalidInput(f"Query parameter {key} is given more than once", key)
            params[key] = value
        return params

    async def body(self, limit: int = MAX_BODY) -> bytes:
        if self._body is not None:
            return self._body
        declared = self.header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise payload_too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise payload_too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if self.after_body is not None:
            await self.after_body()  # kept only once it passed: no second read skips it
        self._body = body
        return body


def check_query_size(count: int) -> None:
    if count > MAX_QUERY_PARAMS:
        raise InvalidInput(f"Query string has more than {MAX_QUERY_PARAMS} parameters", "query")
