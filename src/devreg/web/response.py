"""Responses: a status, a body and headers, sent in two ASGI messages."""

from __future__ import annotations

from typing import Any

import msgspec

from devreg.web.request import Send

_encoder = msgspec.json.Encoder()
JSON = b"application/json"


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

    async def send(self, send: Send) -> None:
        headers = [
            (b"content-type", self.content_type),
            (b"content-length", str(len(self.body)).encode()),
            *self.headers,
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def json_response(
    status: int, value: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> Response:
    return Response(status, _encoder.encode(value), JSON, headers)
