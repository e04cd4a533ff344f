"""Object ids as clients see them: `dev_<32 hex>` (dialect F) and UUIDs (dialect D)."""

from __future__ import annotations

import uuid

import pytest

from devreg.core.ids import (
    ID_BYTES,
    IdSequence,
    new_id,
    parse_prefixed,
    parse_uuid,
    render_prefixed,
    render_uuid,
)

SAMPLE = bytes.fromhex("0123456789abcdef0011223344556677")


def test_new_ids_are_16_random_bytes() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(isinstance(i, bytes) and len(i) == ID_BYTES == 16 for i in ids)


def test_render_prefixed_is_prefix_underscore_32_lowercase_hex() -> None:
    assert render_prefixed("dev", SAMPLE) == "dev_0123456789abcdef0011223344556677"


@pytest.mark.parametrize("prefix", ["dev", "acc"])
def test_prefixed_roundtrip(prefix: str) -> None:
    for _ in range(50):
        object_id = new_id()
        assert parse_prefixed(prefix, render_prefixed(prefix, object_id)) == object_id


@pytest.mark.parametrize(
    "text",
    [
        "",
        "dev_",
        "dev",
        "0123456789abcdef0011223344556677",  # no prefix
        "acc_0123456789abcdef0011223344556677",  # another object's prefix
        "dev-0123456789abcdef0011223344556677",  # wrong separator
        "DEV_0123456789abcdef0011223344556677",
        "dev_0123456789ABCDEF0011223344556677",  # upper-case hex is not what we render
        "dev_0123456789abcdef001122334455667",  # 31 digits
        "dev_0123456789abcdef00112233445566778",  # 33 digits
        "dev_0123456789abcdef00112233445566 7",
        "dev_0123456789abcdef001122334455667g",
        "dev_0123456789abcdef00112233445566\u0667\u0667",  # Arabic-Indic digits
        "dev__123456789abcdef0011223344556677",
        " dev_0123456789abcdef0011223344556677",
        "dev_0123456789abcdef0011223344556677\n",
        "dev_66ab7f4e2b3c9d0012345678",  # the seed's 24-digit example is not one of ours
    ],
)
def test_parse_prefixed_refuses_other_forms(text: str) -> None:
    assert parse_prefixed("dev", text) is None


def test_render_uuid_is_canonical_lowercase() -> None:
    rendered = render_uuid(SAMPLE)
    assert rendered == "01234567-89ab-cdef-0011-223344556677"
    assert str(uuid.UUID(rendered)) == rendered


def test_uuid_roundtrip() -> None:
    for _ in range(50):
        object_id = new_id()
        assert parse_uuid(render_uuid(object_id)) == object_id


def test_parse_uuid_accepts_upper_case_hex() -> None:
    assert parse_uuid("01234567-89AB-CDEF-0011-223344556677") == SAMPLE


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not-a-uuid",
        "0123456789abcdef0011223344556677",  # 32 hex, no hyphens
        "01234567-89ab-cdef-0011-22334455667",  # 35 chars
        "01234567-89ab-cdef-0011-2233445566778",  # 37 chars
        "01234567-89ab-cdef-0011-22334455667g",
        "{01234567-89ab-cdef-0011-223344556677}",
        "urn:uuid:01234567-89ab-cdef-0011-223344556677",
        "dev_0123456789abcdef0011223344556677",
        # 36 characters that `uuid.UUID()` would still accept:
        "0123-4567-89ab-cdef-0011223344556677",  # hyphens in the wrong places
        "{-0123456789abcdef0011223344556677-}",
        " 1234567-89ab-cdef-0011-223344556677",  # leading space
        "+1234567-89ab-cdef-0011-223344556677",  # sign
        "0123_567-89ab-cdef-0011-223344556677",  # digit separator
        "01234567-89ab-cdef-0011-22334455\u0667\u0667\u0667\u0667",  # non-ASCII digits
    ],
)
def test_parse_uuid_refuses_other_forms(text: str) -> None:
    assert parse_uuid(text) is None


def test_an_id_sequence_strictly_increases_and_gives_uuidv7s() -> None:
    sequence = IdSequence()
    ids = [sequence() for _ in range(20_000)]  # several per millisecond, past the pool size
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for value in (ids[0], ids[-1]):
        parsed = uuid.UUID(bytes=value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    # Not a counter: the low 62 bits are random.
    assert len({value[-7:] for value in ids}) == len(ids)


def test_render_uuid_is_the_canonical_form() -> None:
    for value in (SAMPLE, new_id(), bytes(16), b"\xff" * 16):
        assert render_uuid(value) == str(uuid.UUID(bytes=value))
    with pytest.raises(ValueError):
        render_uuid(b"short")
