"""What the writes of one group-commit batch share (storage/group_commit.py): a dict valid
until the batch's COMMIT, and the statements to run just before it."""

from __future__ import annotations

from typing import Any

BEFORE_COMMIT = "before_commit"  # {key: (statement, params)}: run once, before the COMMIT
# {statement: (params, ...)}: rows inserted by one executemany before the COMMIT (and
# before BEFORE_COMMIT's statements), for rows no write of the batch reads back.
INSERT_AT_COMMIT = "insert_at_commit"

Batch = dict[str, Any]


Saved = tuple[Batch, dict[str, int]]


def saved(batch: Batch) -> Saved:
    """What to go back to when a write of the batch fails (its savepoint is undone): a
    copy, and how many rows each INSERT_AT_COMMIT list held (lists only grow, and copying
    one per write would cost a batch holding an import dearly)."""
    copy = {key: dict(value) if isinstance(value, dict) else value for key, value in batch.items()}
    return copy, {
        statement: len(rows) for statement, rows in batch.get(INSERT_AT_COMMIT, {}).items()
    }


def restore(batch: Batch, copy: Saved) -> None:
    values, lengths = copy
    inserts: dict[str, list[Any]] = batch.get(INSERT_AT_COMMIT, {})
    batch.clear()
    batch.update(values)
    kept = {
        statement: rows[: lengths[statement]]
        for statement, rows in inserts.items()
        if statement in lengths
    }
    if kept:
        batch[INSERT_AT_COMMIT] = kept
    else:
        batch.pop(INSERT_AT_COMMIT, None)
