"""Where the change log is written: `append`, inside the transaction of the change it
records, called by every write of `SqlDeviceStore` and by nothing else. And how its rows
are read back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from devreg.changelog.chain import entry_hash
from devreg.changelog.entries import Change, Entry, Head
from devreg.core.records import ActorKind, Origin
from devreg.storage import sql

if TYPE_CHECKING:
    from devreg.storage.base import SqlRunner
    from devreg.storage.batch import Batch

Params = Sequence[Any]
InsertMany = Callable[[str, list[Params]], Awaitable[None]]
_encode = msgspec.json.encode


@dataclass(slots=True, frozen=True)
class Unsealed:
    """One write's entries, before they have a seq and a hash."""

    origin: Origin
    changes: Sequence[Change]
    now: int


def _json(record: msgspec.Struct | None) -> str | None:
    return None if record is None else _encode(record).decode()


async def append(
    tx: SqlRunner,
    origin: Origin,
    changes: Sequence[Change],
    now: int,
    insert_many: InsertMany | None = None,
) -> None:
    """Append `changes` in order. The head's row is the last thing a write touches, so on
    PostgreSQL its lock is held only from here to the commit."""
    if not changes:
        return
    batch: Batch | None = getattr(tx, "batch", None)
    if batch is not None:  # a group-commit batch seals its entries at its end
        batch.defer_entries(origin, changes, now)
        return
    ((last, head_time, prev),) = await tx.rows(sql.TAKE_CHANGE_SEQ, (len(changes),))
    rows, (_, time, last_hash) = sealed(
        (int(last) - len(changes), int(head_time), bytes(prev)), [Unsealed(origin, changes, now)]
    )
    if insert_many is not None and len(rows) > 1:  # an import
        await insert_many(sql.INSERT_CHANGE, rows)
    else:
        for row in rows:
            await tx.run(sql.INSERT_CHANGE, row)
    await tx.run(sql.MOVE_CHANGE_HEAD, (time, last_hash))


HeadState = tuple[int, int, bytes]  # the last seq, its time and its hash


def sealed(head: HeadState, unsealed: Sequence[Unsealed]) -> tuple[list[Params], HeadState]:
    """The rows of `unsealed`'s entries after the head `head`, numbered and chained in
    order, and the head after them. A write's entries carry the time it stamped on its
    records, and each write's time is later than the one before it, even if a clock went
    back or another write stamped a later time: "as of" a write's time includes it and
    nothing after it."""
    seq, time, prev_hash = head
    rows: list[Params] = []
    for item in unsealed:
        time = max(item.now, time + 1)
        for change in item.changes:
            seq += 1
            entry = Entry(
                seq, time, change.account_id, change.live_mode, item.origin.actor.kind,
                item.origin.actor.id, item.origin.request_id, change.action.value,
                change.object_type.value, change.object_id, change.version,
                _json(change.before), _json(change.after), prev_hash, b"",
            )  # fmt: skip
            prev_hash = entry_hash(prev_hash, entry)
            rows.append(entry_row(entry, prev_hash))
    return rows, (seq, time, prev_hash)


def entry_row(entry: Entry, hash_: bytes) -> tuple[Any, ...]:
    return (
        entry.seq, entry.time, entry.account_id, entry.live_mode, entry.actor_kind.value,
        entry.actor_id, entry.request_id, entry.action, entry.object_type, entry.object_id,
        entry.object_version, entry.before, entry.after, entry.prev_hash, hash_,
    )  # fmt: skip


def entry_from_row(row: Sequence[Any]) -> Entry:
    return Entry(
        seq=int(row[0]), time=int(row[1]),
        account_id=None if row[2] is None else bytes(row[2]),
        live_mode=None if row[3] is None else bool(row[3]),
        actor_kind=ActorKind(row[4]), actor_id=row[5], request_id=row[6], action=row[7],
        object_type=row[8], object_id=bytes(row[9]),
        object_version=None if row[10] is None else int(row[10]),
        before=row[11], after=row[12], prev_hash=bytes(row[13]), hash=bytes(row[14]),
    )  # fmt: skip


def head_from_row(row: Sequence[Any]) -> Head:
    return Head(int(row[0]), int(row[1]), bytes(row[2]), int(row[3]), bytes(row[4]))


async def seal(tx: SqlRunner, unsealed: Sequence[Unsealed], insert_rows: InsertMany) -> None:
    """A group-commit batch's entries, numbered from the head (taken here, so on PostgreSQL
    its lock is held from here to the COMMIT only), chained and inserted by `insert_rows`
    (one executemany); called once, at the batch's end (storage/batch.py:seal)."""
    if not unsealed:
        return
    count = sum(len(item.changes) for item in unsealed)
    ((last, head_time, prev),) = await tx.rows(sql.TAKE_CHANGE_SEQ, (count,))
    rows, (_, time, last_hash) = sealed((int(last) - count, int(head_time), bytes(prev)), unsealed)
    await insert_rows(sql.INSERT_CHANGE, rows)
    await tx.run(sql.MOVE_CHANGE_HEAD, (time, last_hash))
