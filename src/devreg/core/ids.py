"""Object ids: 128-bit UUIDv7s, rendered per dialect (F: `dev_<32 hex>`, D: a UUID)."""

from __future__ import annotations

import os
import re
import secrets
import time
import uuid
from collections.abc import Iterable

ID_BYTES = 16
_HEX_DIGITS = frozenset("0123456789abcdef")
# 8-4-4-4-12 hex digits; `uuid.UUID()` alone also takes braces, `urn:uuid:`, misplaced
# hyphens, `_`, signs and spaces, none of which is a UUID a client should be able to send.
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def new_id() -> bytes:
    """A UUIDv7 (RFC 9562): 48 bits of milliseconds then 74 random bits. Valid wherever a
    UUID is checked, unguessable, and time-ordered so that new rows append to the indexes."""
    millis = time.time_ns() // 1_000_000
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | secrets.randbits(80)
    value = value & ~(0xF << 76) | (0x7 << 76)  # version 7
    value = value & ~(0x3 << 62) | (0x2 << 62)  # variant 10
    return value.to_bytes(ID_BYTES, "big")


def render_prefixed(prefix: str, object_id: bytes) -> str:
    return f"{prefix}_{object_id.hex()}"


def parse_prefixed(prefix: str, text: str) -> bytes | None:
    """`dev_<32 lowercase hex>` -> 16 bytes; None when the text is not of that form."""
    head = prefix + "_"
    if len(text) != len(head) + 2 * ID_BYTES or not text.startswith(head):
        return None
    digits = text[len(head) :]
    if not _HEX_DIGITS.issuperset(digits):
        return None
    return bytes.fromhex(digits)


def render_uuid(object_id: bytes) -> str:
    """8-4-4-4-12 lowercase hex, as `str(uuid.UUID(bytes=...))` gives it, at a third of the
    cost (it runs for every id of every device a listing or an export renders)."""
    if len(object_id) != ID_BYTES:
        raise ValueError("an id is 16 bytes")
    h = object_id.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def render_uuids(object_ids: Iterable[bytes] | None) -> list[str] | None:
    """A set of ids rendered in one order (sorted); None stays None (an API key's divisions:
    None is every division)."""
    return None if object_ids is None else sorted(map(render_uuid, object_ids))


def parse_uuid(text: str) -> bytes | None:
    """A UUID in its canonical 36-character form -> 16 bytes; None otherwise."""
    if _CANONICAL_UUID.fullmatch(text) is None:
        return None
    return uuid.UUID(text).bytes


class IdSequence:
    """UUIDv7s that strictly increase within one sequence (RFC 9562 section 6.2, method 1:
    a 12-bit counter in rand_a, started at a random value each millisecond, and 62 random
    bits after it). Devices imported in one go share their creation time, so their ids are
    what keeps them listed in the order the file gave them."""

    _POOL = 8 * 1024  # random bytes drawn at once: one os.urandom call per 1,024 ids

    def __init__(self) -> None:
        self._millis = -1
        self._counter = 0
        self._random = b""
        self._used = 0

    def __call__(self) -> bytes:
        millis = time.time_ns() // 1_000_000
        if millis <= self._millis:  # same millisecond, or the clock stepped back: count on
            self._counter += 1
            if self._counter > 0xFFF:
                self._millis += 1
                self._counter = 0
            millis = self._millis
        else:
            self._millis = millis
            self._counter = secrets.randbits(11)  # at least 2048 more ids in this millisecond
        if self._used == len(self._random):
            self._random, self._used = os.urandom(self._POOL), 0
        tail = int.from_bytes(self._random[self._used : self._used + 8], "big")
        self._used += 8
        value = (millis & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | self._counter << 64
        value |= 0x2 << 62 | tail & (1 << 62) - 1
        return value.to_bytes(ID_BYTES, "big")
