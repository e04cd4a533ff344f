"""Where the change log is written: `append`, inside the transaction of the change it
records, called by every write of `SqlDeviceStore` and by nothing else. And how its rows
are read back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from devreg.changelog.chain import entry_hash
from devreg.changelog.entries import Change, Entry, Head
from devreg.core.records import ActorKind, Origin
from devreg.storage import sql
from devreg.storage.batch import BEFORE_COMMIT, INSERT_AT_COMMIT

if TYPE_CHECKING:
    from devreg.storage.base import SqlRunner

_HEAD = "change_head"
InsertMany = Callable[[str, list[Sequence[Any]]], Awaitable[None]]
_encode = msgspec.json.encode


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
    # SQLite's group commit: the head, once read in a batch, is kept in the batch and
    # stored once before its COMMIT (the batch holds the write lock all along).
    batch: dict[str, Any] | None = getattr(tx, "batch", None)
    if batch is not None:
        if _HEAD not in batch:
            ((last, head_time, prev),) = await tx.rows(sql.SELECT_HEAD_TO_WRITE)
            batch[_HEAD] = (int(last), int(head_time), bytes(prev))
        last, head_time, prev = batch[_HEAD]
        last += len(changes)
    else:  # elsewhere the head row itself, locked until the commit
        ((last, head_time, prev),) = await tx.rows(sql.TAKE_CHANGE_SEQ, (len(changes),))
    seq, time, prev_hash = int(last) - len(changes), max(now, int(head_time)), bytes(prev)
    rows: list[Sequence[Any]] = []
    for change in changes:
        seq += 1
        entry = Entry(
            seq, time, change.account_id, change.live_mode, origin.actor.kind, origin.actor.id,
            origin.request_id, change.action.value, change.object_type.value, change.object_id,
            change.version, _json(change.before), _json(change.after), prev_hash, b"",
        )  # fmt: skip
        prev_hash = entry_hash(prev_hash, entry)
        rows.append(entry_row(entry, prev_hash))
    if insert_many is not None and len(rows) > 1:  # an import: not held until the COMMIT
        await insert_many(sql.INSERT_CHANGE, rows)
    elif batch is not None:
        # No write reads the batch's own entries back (pruning reads the committed head and
        # stops below it): they go in with one executemany just before the COMMIT (a
        # failed write's rows leave with its copy).
        batch.setdefault(INSERT_AT_COMMIT, {}).setdefault(sql.INSERT_CHANGE, []).extend(rows)
    else:
        for row in rows:
            await tx.run(sql.INSERT_CHANGE, row)
    if batch is not None:
        batch[_HEAD] = (seq, time, prev_hash)
        batch.setdefault(BEFORE_COMMIT, {})[_HEAD] = (sql.STORE_CHANGE_HEAD, (seq, time, prev_hash))
    else:
        await tx.run(sql.MOVE_CHANGE_HEAD, (time, prev_hash))


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
