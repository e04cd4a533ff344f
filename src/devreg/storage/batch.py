"""What the writes of one group-commit batch share (storage/group_commit.py): a dict valid
until the batch's COMMIT, and the statements to run just before it."""

from __future__ import annotations

from typing import Any

BEFORE_COMMIT = "before_commit"  # {key: (statement, params)}: run once, before the COMMIT

Batch = dict[str, Any]


def saved(batch: Batch) -> Batch:
    """A copy to go back to when a write of the batch fails (its savepoint is undone)."""
    return {key: dict(value) if isinstance(value, dict) else value for key, value in batch.items()}


def restore(batch: Batch, copy: Batch) -> None:
    batch.clear()
    batch.update(copy)
