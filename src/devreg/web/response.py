"""Responses: a status, a body and headers, sent in two ASGI messages."""

from __future__ import annotations

from typing import Any

import msgspec

from devreg.web.request import Send

_encoder = msgspec.json.Encoder()
JSON = b"application/json"
# On every answer: a browser must not guess another type than the one declared.
NOSNIFF = (b"x-content-type-options", b"nosniff")
# On answers that carry a secret (a token, a private key, an enrollment secret): no cache,
# shared or private, may keep a copy.
NO_STORE = (b"cache-control", b"no-store")


class Response:
    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: bytes = JSON,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or []

    async def send(self, send: Send, head: bool = False) -> None:
        """The answer; to a HEAD request (`head`) the same status and headers, no body."""
        if self.status == 304:  # RFC 9110 15.4.5: no content, so no length or type of it
            headers = [NOSNIFF, *self.headers]
        else:
            headers = [
                (b"content-type", self.content_type),
                (b"content-length", str(len(self.body)).encode()),
                NOSNIFF,
                *self.headers,
            ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else self.body})


def json_response(
    status: int, value: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> Response:
    return Response(status, _encoder.encode(value), JSON, headers)
