"""Strict JSON bodies (web/body.py): no body is an empty object, anything else must be JSON."""

from __future__ import annotations

import msgspec
import pytest

from devreg.core.errors import InvalidInput
from devreg.web.body import decode_body
from devreg.web.request import Message, Request


class Shape(msgspec.Struct, forbid_unknown_fields=True):
    name: str = "unset"


def request_with(body: bytes) -> Request:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [
        (b"content-type", b"application/json")]}  # fmt: skip
    return Request(scope, receive)


async def test_no_body_is_an_empty_object() -> None:
    assert await decode_body(request_with(b""), Shape) == Shape()


@pytest.mark.parametrize("body", [b" ", b"\n", b"\t\r\n ", b"\x0b", b"\x0c"])
async def test_a_body_of_whitespace_is_not_json(body: bytes) -> None:
    """Found by fuzzing: a body of random bytes that happened to be whitespace (or a vertical
    tab, which is not even JSON whitespace) was taken for no body, and POST /devices answered
    201 to it."""
    with pytest.raises(InvalidInput) as refused:
        await decode_body(request_with(body), Shape)
    assert refused.value.field == "body"
    assert "not valid JSON" in refused.value.message


async def test_json_with_whitespace_around_it() -> None:
    assert await decode_body(request_with(b' \n{"name": "x"}\n '), Shape) == Shape(name="x")
