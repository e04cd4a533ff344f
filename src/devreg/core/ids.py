"""Object ids: 128-bit UUIDv7s, rendered per dialect (F: `dev_<32 hex>`, D: a UUID)."""

from __future__ import annotations

import re
import secrets
import time
import uuid

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
    return str(uuid.UUID(bytes=object_id))


def parse_uuid(text: str) -> bytes | None:
    """A UUID in its canonical 36-character form -> 16 bytes; None otherwise."""
    if _CANONICAL_UUID.fullmatch(text) is None:
        return None
    return uuid.UUID(text).bytes
