"""JSON request bodies, decoded strictly into a msgspec Struct (both dialects use this)."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from devreg.core.errors import InvalidInput
from devreg.web.errors import HttpError
from devreg.web.request import Request

T = TypeVar("T", bound=msgspec.Struct)

_decoders: dict[type, msgspec.json.Decoder[object]] = {}


async def decode_body(request: Request, shape: type[T]) -> T:
    """The JSON body as `shape`; no body at all is an empty object. Anything else must be
    JSON: a body of only whitespace is not (nor is a vertical tab, which `bytes.strip()`
    would also have taken for nothing)."""
    content_type = request.header(b"content-type")
    if content_type and content_type.split(";")[0].strip().lower() != "application/json":
        raise HttpError(415, "unsupported_media_type", "Content-Type must be application/json")
    raw = await request.body()
    if not raw:
        raw = b"{}"
    decoder = _decoders.get(shape)
    if decoder is None:
        decoder = _decoders[shape] = msgspec.json.Decoder(shape)
    try:
        value = decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"Invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"Request body is not valid JSON: {exc}", "body") from None
    except UnicodeDecodeError:  # msgspec's error for bad UTF-8 inside a string
        raise InvalidInput("Request body is not valid JSON: it is not UTF-8", "body") from None
    except RecursionError:  # the shapes refuse nesting early; this is the backstop
        raise InvalidInput("Request body is nested too deeply", "body") from None
    assert isinstance(value, shape)
    return value
