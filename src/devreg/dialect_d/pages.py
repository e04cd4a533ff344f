"""Dialect D's list answers, `{"limit", "offset", "total", "records"}` (and the account
log's `{"limit", "after_seq", "next_after_seq", "records"}`), bounded in bytes.

Records are rendered and encoded a batch at a time; when the next one would take the
answer past MAX_LIST_BYTES the page ends there (it always holds at least one record), and
its `limit` then says how many records it holds, so a client that advances `offset` by
`len(records)` (or by the answer's `limit`) reads every record exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import msgspec

from devreg.web.response import JSON, Response

MAX_LIST_BYTES = 1 << 20  # 1 MiB, the size of the largest request body
# Sent (with "false") when the device list's `total` is a lower bound, not a count.
TOTAL_EXACT_HEADER = b"x-total-exact"
# Records are fetched and rendered in batches of about BATCH_BYTES, and the event loop is
# given back between batches: a page of large records never holds it for long (SQLite
# reads run inline), and never sits in memory as rows and Structs all at once.
BATCH_BYTES = 128 << 10
FIRST_BATCH = 4  # records rendered before their size is known
MAX_BATCH = 250
_HEAD_ROOM = 128  # the envelope around the records
_EMPTY_RECORDS = b'"records":[]}'  # how an envelope Struct ends before the records go in
_encoder = msgspec.json.Encoder()
T = TypeVar("T")
K = TypeVar("K")


class ListBody:
    def __init__(self, max_bytes: int = MAX_LIST_BYTES) -> None:
        self.budget = max_bytes - _HEAD_ROOM
        self.parts: list[bytes] = []
        self.size = 0
        self.full = False

    def add(self, record: msgspec.Struct) -> bool:
        """Take the record if it fits (the first always does); False once the page is full."""
        encoded = _encoder.encode(record)
        if self.parts and self.size + len(encoded) + 1 > self.budget:
            self.full = True
            return False
        self.parts.append(encoded)
        self.size += len(encoded) + 1
        return True

    def next_batch(self) -> int:
        """How many records to fetch and render next: about BATCH_BYTES of them, and no
        more than may still fit."""
        if not self.parts:
            return FIRST_BATCH
        average = max(1, self.size // len(self.parts))
        fitting = (self.budget - self.size) // average + 1
        return max(1, min(MAX_BATCH, BATCH_BYTES // average, fitting))

    async def _batches(self, items: Sequence[T]) -> AsyncIterator[Sequence[T]]:
        """`items` a batch at a time (sized as the page fills) until all are given or the
        page is full, letting other requests run in between."""
        start = 0
        while start < len(items) and not self.full:
            if start:
                await asyncio.sleep(0)
            count = self.next_batch()
            yield items[start : start + count]
            start += count

    async def fill(
        self, items: Sequence[T], render: Callable[[Sequence[T]], Awaitable[list[msgspec.Struct]]]
    ) -> None:
        """Render `items` a batch at a time (`render` fetches what a batch needs) until all
        are in or the page is full, letting other requests run in between."""
        async for batch in self._batches(items):
            for record in await render(batch):
                if not self.add(record):
                    break

    async def fill_keyed(
        self,
        items: Sequence[T],
        render: Callable[[Sequence[T]], Awaitable[list[tuple[K, msgspec.Struct]]]],
    ) -> K | None:
        """As `fill`, with `render` giving each record with its key (say the seq of the
        entry it shows; an item may give none, an entry pruned since). Returns the key of
        the last record taken, where a full page ends (None when none was taken)."""
        last: K | None = None
        async for batch in self._batches(items):
            for key, record in await render(batch):
                if not self.add(record):
                    break
                last = key
        return last

    def served(self, limit: int) -> int:
        """The page's `limit`: how many records it holds when it is full, else as asked."""
        return len(self.parts) if self.full else limit

    def response(
        self, limit: int, offset: int, total: int, headers: list[tuple[bytes, bytes]] | None = None
    ) -> Response:
        envelope = b'{"limit":%d,"offset":%d,"total":%d,' % (self.served(limit), offset, total)
        return self.response_after(envelope, headers)

    def response_after(
        self, envelope: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> Response:
        """The records as `"records":[...]}` after `envelope` (`{` and the answer's other
        members, each followed by a comma)."""
        body = b"".join((envelope, b'"records":[', b",".join(self.parts), b"]}"))
        return Response(200, body, JSON, headers)

    def response_around(
        self, envelope: msgspec.Struct, headers: list[tuple[bytes, bytes]] | None = None
    ) -> Response:
        """The records inside `envelope`, a Struct whose last field is `records`, given
        empty: its other members as it encodes them, then the records. ValueError when it
        does not encode ending with `"records":[]}` (a field renamed, moved or filled),
        rather than an answer that is not JSON."""
        encoded = _encoder.encode(envelope)
        if not encoded.endswith(_EMPTY_RECORDS):
            raise ValueError(
                f"{type(envelope).__name__} must end with an empty `records` field to take "
                f"the page's records, not {encoded[-len(_EMPTY_RECORDS) :]!r}"
            )
        return self.response_after(encoded[: -len(_EMPTY_RECORDS)], headers)


async def rendered(
    items: Sequence[T], render: Callable[[T], msgspec.Struct]
) -> list[msgspec.Struct]:
    """`render` over records already in memory, for ListBody.fill."""
    return [render(item) for item in items]
