"""The change log's use cases: a device's history and its state at a moment, an account's
log, the export, the chain's verification and retention. Reads only; the log is written
by the store's writes (storage/change_log.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import msgspec

from devreg.changelog.chain import Broken, verify
from devreg.changelog.entries import Entry, Head, ObjectType
from devreg.changelog.records import DeviceRecord, ProfileRecord, device_record
from devreg.changelog.store import ChangeLogStore, EntryFilter
from devreg.core import reach
from devreg.core.clock import render_rfc3339
from devreg.core.errors import InvalidInput, NotFound
from devreg.core.paging import check_page
from devreg.core.records import Caller, Device
from devreg.core.store import DeviceStore
from devreg.core.text import check_text

MAX_LOG_PAGE = 1000
# The account's entries one page of its log examines at most (its filters but object_id
# are checked row by row): a filter matching little costs a few pages, never a scan.
MAX_LOG_SCAN = 10_000
DEFAULT_LOG_PAGE = 100
EXPORT_BATCH = 1000
# Walks of the chain `verify` makes when pruning moved the pruned mark under the last one.
VERIFY_ATTEMPTS = 3
MAX_FILTER_TEXT = 255  # the longest actor_id or action filter (longer than any written)
DEFAULT_RETENTION_DAYS = 400  # longer than a year of audits
DAY_US = 86_400 * 1_000_000
PRUNE_BATCH = 500  # entries per pruning transaction: a few milliseconds of the write lock
_device = msgspec.json.Decoder(DeviceRecord)
_profile = msgspec.json.Decoder(ProfileRecord)


class Verification(msgspec.Struct, frozen=True):
    checked: int
    head: Head
    broken: Broken | None
    oldest_seq: int | None = None  # the oldest entry stored (None: none is)
    oldest_time: int | None = None

    def truncation_warning(self, retention_days: int, now: int) -> str | None:
        """What the chain cannot prove (changelog/chain.py): entries deleted from the
        oldest end with the pruned mark moved over them verify. Retention prunes only
        what is older than `retention_days`, so an oldest kept entry younger than that,
        after pruning, means entries removed by someone else, or a log idle for that long
        right after the last pruned entry; None when nothing looks so."""
        if self.head.pruned_seq == 0 or self.oldest_time is None:
            return None
        if retention_days == 0:
            return (
                f"entries through seq {self.head.pruned_seq} were pruned, but a retention"
                " of 0 days keeps every entry: were they removed by hand?"
            )
        cutoff = now - retention_days * DAY_US
        if self.oldest_time <= cutoff:
            return None
        return (
            f"entries through seq {self.head.pruned_seq} were pruned, but the oldest kept"
            f" entry (seq {self.oldest_seq}) is from {render_rfc3339(self.oldest_time)},"
            f" younger than a {retention_days}-day retention prunes (before"
            f" {render_rfc3339(cutoff)}): entries may have been removed from the start of"
            " the log (or nothing was logged for that long); compare with an earlier export"
        )


class ChangeLogService:
    def __init__(self, log: ChangeLogStore, store: DeviceStore) -> None:
        self.log = log
        self.store = store

    async def _device(self, caller: Caller, device_id: bytes) -> Device:
        """The caller's device, deleted or not (its history outlives its deletion)."""
        return await reach.reachable_device(self.store, caller, device_id, include_deleted=True)

    async def device_history(
        self, caller: Caller, device_id: bytes, *, limit: int, offset: int
    ) -> tuple[list[int], int]:
        """The page's seqs, newest first, with the number of entries; `entries` reads
        them (a batch at a time: a page of large records is never all in memory)."""
        check_page(limit, offset)
        await self._device(caller, device_id)
        return await self.log.object_history_seqs(device_id, limit=limit, offset=offset)

    async def entries(self, seqs: Sequence[int]) -> list[Entry]:
        """The entries of `seqs` still kept, in that order."""
        return await self.log.changes_by_seqs(seqs)

    async def device_as_of(self, caller: Caller, device_id: bytes, time: int) -> DeviceRecord:
        """The device as it was at `time`: what its last change before then left, or,
        before its first logged change (devices older than the log), what that change
        found, from the moment it was last updated. NotFound before it existed."""
        device = await self._device(caller, device_id)
        entry = await self.log.object_as_of(device_id, time)
        if entry is not None and entry.after is not None:
            return _device.decode(entry.after)
        following = await self.log.object_next_after(device_id, time)
        if following is None:  # never changed since the log began: it is as it is now
            if device.updated_at <= time:
                values = (await self.store.field_values([device.id])).get(device.id, {})
                return device_record(device, values)
        elif following.before is not None:
            before = _device.decode(following.before)
            if before.updated <= time:
                return before
        raise NotFound(f"The device did not exist at {render_rfc3339(time)}")

    async def profile_as_of(self, profile_id: bytes, time: int) -> ProfileRecord | None:
        """The profile's record at `time` when the log knows it (names as they were)."""
        entry = await self.log.object_as_of(profile_id, time)
        if entry is None or entry.after is None or entry.object_type != ObjectType.PROFILE:
            return None
        return _profile.decode(entry.after)

    async def account_page(
        self, caller: Caller, where: EntryFilter, *, after_seq: int, limit: int
    ) -> tuple[list[int], int | None]:
        """The seqs of a page of the caller's account's log in seq order (its mode's
        entries and those of what both modes share: the account, divisions, profiles;
        `entries` reads them), and the `after_seq` that continues it (None: nothing more
        now). Unless narrowed to one object, a page examines at most MAX_LOG_SCAN of the
        account's entries: a filter that matches few of them ends the page early, short
        or empty, with the cursor at the last entry examined."""
        if not 1 <= limit <= MAX_LOG_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_LOG_PAGE}", "limit")
        if after_seq < 0:
            raise InvalidInput("after_seq must not be negative", "after_seq")
        # Text filters follow the text rule (no NUL: PostgreSQL cannot compare one), and
        # no stored actor id or action is longer.
        where = msgspec.structs.replace(
            where,
            actor_id=None if where.actor_id is None
            else check_text(where.actor_id, "actor_id", MAX_FILTER_TEXT),
            action=None if where.action is None
            else check_text(where.action, "action", MAX_FILTER_TEXT),
        )  # fmt: skip
        # Entries carry no division to filter on: a limited key reads the log of one object
        # of its divisions at a time, and of anything else finds nothing.
        if reach.limited(caller):
            if where.object_id is None:
                reach.check_unlimited(
                    caller, "read the account's whole audit log (name an object_id)"
                )
            elif not await reach.reaches_object(self.store, caller, where.object_id):
                return [], None
        account = caller.account_id
        through = None
        if where.object_id is None:  # else the object's own entries are all it examines
            through = await self.log.account_seq_after(account, after_seq, MAX_LOG_SCAN)
        seqs = await self.log.account_change_seqs(
            account, caller.live_mode, where, after_seq=after_seq, through_seq=through,
            limit=limit,
        )  # fmt: skip
        if len(seqs) == limit:
            return seqs, seqs[-1]
        return seqs, through  # None: the account's log was examined to its end

    async def export(
        self, *, after_seq: int = 0, account_id: bytes | None = None
    ) -> AsyncIterator[Entry]:
        """Every entry after `after_seq` (of one account, both modes, when given), in
        seq order, a batch at a time: memory stays flat whatever the log holds."""
        while True:
            if account_id is None:
                batch = await self.log.changes_after(after_seq, EXPORT_BATCH)
            else:
                batch = await self.log.account_changes(
                    account_id, None, EntryFilter(), after_seq=after_seq, limit=EXPORT_BATCH
                )
            for entry in batch:
                yield entry
            if len(batch) < EXPORT_BATCH:
                return
            after_seq = batch[-1].seq

    async def verify(self) -> Verification:
        """Every stored entry, oldest first (also any below the pruned mark: they are
        still served, so they are checked, and fail), against the head (taken first:
        entries appended while it walks are not checked this time). A break found while
        a pruner (of a serving process) moved the pruned mark is no break: the walk
        starts again, from the new oldest entry."""
        for _ in range(VERIFY_ATTEMPTS - 1):
            found = await self._verify_once()
            if found.broken is None:
                return found
            if (await self.log.change_head()).pruned_seq == found.head.pruned_seq:
                return found  # nothing pruned meanwhile: a real break
        return await self._verify_once()

    async def _verify_once(self) -> Verification:
        head = await self.log.change_head()
        first_seq = await self.log.oldest_seq()  # below 1 too: a row put there is served
        oldest: list[Entry] = []

        async def stored() -> AsyncIterator[Entry]:
            if first_seq is None:
                return
            async for entry in self.export(after_seq=first_seq - 1):
                if entry.seq > head.seq:
                    return
                if not oldest:
                    oldest.append(entry)
                yield entry

        checked, broken = await verify(stored(), head)
        first = oldest[0] if oldest else None
        return Verification(
            checked=checked, head=head, broken=broken,
            oldest_seq=None if first is None else first.seq,
            oldest_time=None if first is None else first.time,
        )  # fmt: skip

    async def prune(self, before_time: int, batch: int = PRUNE_BATCH) -> int:
        """Entries older than `before_time`, a batch per transaction; how many in all."""
        pruned = 0
        while True:
            count = await self.log.prune_changes(before_time, batch)
            pruned += count
            if count < batch:
                return pruned
