"""What the change log reads from the store (SqlDeviceStore implements it, beside
DeviceStore). Writes are not here: every store write appends its own entries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from devreg.changelog.entries import Entry, Head


class EntryFilter(msgspec.Struct, frozen=True):
    """An account's log, narrowed; None: any. Times are microseconds, inclusive."""

    object_id: bytes | None = None
    actor_kind: str | None = None
    actor_id: str | None = None
    action: str | None = None
    time_from: int | None = None
    time_to: int | None = None


class ChangeLogStore(Protocol):
    async def object_history(
        self, object_id: bytes, *, limit: int, offset: int
    ) -> tuple[list[Entry], int]:
        """The object's entries, newest first, and how many it has."""

    async def object_history_seqs(
        self, object_id: bytes, *, limit: int, offset: int
    ) -> tuple[list[int], int]:
        """The seqs of the object's entries, newest first (from its index alone), and how
        many it has."""

    async def changes_by_seqs(self, seqs: Sequence[int]) -> list[Entry]:
        """The entries of `seqs` that are kept, in the order of `seqs`."""

    async def object_as_of(self, object_id: bytes, time: int) -> Entry | None:
        """The object's last entry at or before `time`."""

    async def object_next_after(self, object_id: bytes, time: int) -> Entry | None:
        """The object's first entry after `time`."""

    async def changes_after(self, after_seq: int, limit: int) -> list[Entry]:
        """Up to `limit` entries with seq > `after_seq`, in seq order (every account)."""

    async def account_changes(
        self,
        account_id: bytes,
        live_mode: bool | None,
        where: EntryFilter,
        *,
        after_seq: int,
        limit: int,
    ) -> list[Entry]:
        """The account's entries after `after_seq`, in seq order: with `live_mode`, that
        mode's and those of objects both modes share (profiles, divisions, the account)."""

    async def account_change_seqs(
        self,
        account_id: bytes,
        live_mode: bool | None,
        where: EntryFilter,
        *,
        after_seq: int,
        through_seq: int | None,
        limit: int,
    ) -> list[int]:
        """The seqs of `account_changes`, no further than `through_seq` when given."""

    async def account_seq_after(self, account_id: bytes, after_seq: int, count: int) -> int | None:
        """The seq of the account's `count`th entry after `after_seq` (any mode, from its
        index alone), None when it has fewer."""

    async def first_seq_at(self, time: int) -> int | None:
        """The first kept entry's seq at or after `time`."""

    async def oldest_seq(self) -> int | None:
        """The smallest seq stored (whatever it is: verify reads from there), None: none."""

    async def change_head(self) -> Head: ...

    async def prune_changes(self, before_time: int, batch: int) -> int:
        """Delete up to `batch` of the oldest entries older than `before_time` (never the
        newest entry), moving the head's pruned mark; how many were deleted."""
