"""ListBody, dialect D's byte-bounded list answers, on its own (no server): the envelope it
puts around the records is valid JSON, byte for byte what the routes sent before; a page
that fills at its byte bound knows the key of the last record it took, also when some
items gave no record; an envelope that cannot take the records is refused."""

from __future__ import annotations

import json
from collections.abc import Sequence

import msgspec
import pytest

from devreg.dialect_d.pages import ListBody


class Rec(msgspec.Struct):
    seq: int
    pad: str


class PageOut(msgspec.Struct):  # the shape of the account log's envelope
    limit: int
    after_seq: int
    next_after_seq: int | None
    records: list[Rec]


class RecordsFirst(msgspec.Struct):
    records: list[Rec]
    limit: int


class Renamed(msgspec.Struct):
    limit: int
    entries: list[Rec]


PAD = "x" * 100
HEAD_ROOM = 128  # pages._HEAD_ROOM: the bound's share kept for the envelope


def record(seq: int) -> Rec:
    return Rec(seq=seq, pad=PAD)


def bound_for(count: int) -> int:
    """A max_bytes that holds exactly `count` records of two-digit seqs."""
    size = len(msgspec.json.encode(record(10)))
    return HEAD_ROOM + count * (size + 1)


async def keyed(batch: Sequence[int]) -> list[tuple[int, msgspec.Struct]]:
    return [(seq, record(seq)) for seq in batch]


async def keyed_pruned(batch: Sequence[int]) -> list[tuple[int, msgspec.Struct]]:
    """As the account log's entries: those of seqs divisible by 3 are gone."""
    return [(seq, record(seq)) for seq in batch if seq % 3]


def records_of(body: bytes) -> list[int]:
    return [r["seq"] for r in json.loads(body)["records"]]


async def test_the_envelope_is_valid_json_and_the_same_bytes_as_before() -> None:
    body = ListBody()
    await body.fill_keyed(list(range(10, 20)), keyed)
    out = PageOut(limit=10, after_seq=9, next_after_seq=None, records=[])
    answer = body.response_around(out)
    assert answer.status == 200
    assert json.loads(answer.body) == {
        "limit": 10,
        "after_seq": 9,
        "next_after_seq": None,
        "records": [{"seq": seq, "pad": PAD} for seq in range(10, 20)],
    }
    # what audit_log built by hand before response_around
    before = body.response_after(msgspec.json.encode(out).removesuffix(b'"records":[]}'))
    assert answer.body == before.body
    # the same as encoding the envelope with its records in it
    full = PageOut(limit=10, after_seq=9, next_after_seq=None,
                   records=[record(seq) for seq in range(10, 20)])  # fmt: skip
    assert answer.body == msgspec.json.encode(full)


async def test_an_empty_page_is_valid_json() -> None:
    body = ListBody()
    assert await body.fill_keyed([], keyed) is None
    answer = body.response_around(PageOut(limit=5, after_seq=0, next_after_seq=None, records=[]))
    assert json.loads(answer.body)["records"] == []


async def test_a_page_full_at_its_byte_bound_knows_its_last_record() -> None:
    max_bytes = bound_for(5)
    body = ListBody(max_bytes)
    last = await body.fill_keyed(list(range(10, 40)), keyed)
    assert body.full and len(body.parts) == 5 and body.served(1000) == 5
    assert last == 14
    answer = body.response_around(
        PageOut(limit=body.served(1000), after_seq=9, next_after_seq=last, records=[])
    )
    assert len(answer.body) <= max_bytes
    page = json.loads(answer.body)
    assert records_of(answer.body) == [10, 11, 12, 13, 14]
    assert page["next_after_seq"] == page["records"][-1]["seq"] == last
    assert page["limit"] == 5


async def test_the_last_key_is_the_last_record_taken_when_items_give_none() -> None:
    """Seqs 12, 15, 18, ... give no record: the page of 5 records ends at seq 17, which
    is not the 5th item (14) as an index into the items would say."""
    body = ListBody(bound_for(5))
    items = list(range(10, 40))
    last = await body.fill_keyed(items, keyed_pruned)
    assert body.full and len(body.parts) == 5
    taken = records_of(body.response_after(b"{").body)
    assert taken == [10, 11, 13, 14, 16]
    assert last == taken[-1] == 16 != items[len(body.parts) - 1]


async def test_a_page_that_is_not_full_ends_at_its_last_item() -> None:
    body = ListBody(bound_for(5))
    assert await body.fill_keyed([10, 11, 12], keyed) == 12
    assert not body.full and body.served(3) == 3
    assert await ListBody(bound_for(5)).fill_keyed([10, 11, 12], keyed_pruned) == 11


async def test_the_first_record_is_taken_whatever_its_size() -> None:
    body = ListBody(HEAD_ROOM + 10)
    assert await body.fill_keyed([10, 11], keyed) == 10
    assert body.full and len(body.parts) == 1


@pytest.mark.parametrize(
    "envelope",
    [
        Renamed(limit=1, entries=[]),
        RecordsFirst(records=[], limit=1),
        PageOut(limit=1, after_seq=0, next_after_seq=None, records=[record(10)]),
    ],
    ids=["renamed", "not-last", "not-empty"],
)
async def test_an_envelope_that_cannot_take_the_records_is_refused(
    envelope: msgspec.Struct,
) -> None:
    body = ListBody()
    await body.fill_keyed([10, 11], keyed)
    with pytest.raises(ValueError, match="empty `records` field"):
        body.response_around(envelope)
