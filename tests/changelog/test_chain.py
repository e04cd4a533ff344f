"""The hash chain, on both stores: `verify` passes on an honest log, names the first entry
edited, removed, inserted or moved, ends where the head says, and still passes after
retention pruned the oldest entries."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from devreg.auth.api_keys import new_api_key
from devreg.changelog.chain import entry_hash
from devreg.changelog.entries import Action
from devreg.changelog.service import ChangeLogService
from devreg.core.accounts import build_account
from devreg.core.clock import now_us
from devreg.core.ids import new_id
from devreg.core.records import Device, DeviceStatus
from devreg.core.store import DeviceChange
from devreg.storage import change_log, sql
from devreg.storage.base import SqlDeviceStore
from tests.support.origins import TEST_ORIGIN


async def populate(store: SqlDeviceStore, updates: int = 6) -> Device:
    """An account (4 entries: it, a key, a division, a profile), a device (seq 5) and
    `updates` updates of it (seq 6 sets ref-0, ...)."""
    now = now_us()
    new = build_account("Chain", now)
    _, key = new_api_key(new.account.id, True, now)
    await store.create_account(new.account, [key], new.division, new.profile, TEST_ORIGIN)
    device = Device(
        id=new_id(), account_id=new.account.id, live_mode=True, reference_id=None,
        device_identifier="c-1", division_id=new.division.id, profile_id=new.profile.id,
        status=DeviceStatus.ACTIVE, allow_read=True, allow_write=True, allow_renew=True,
        last_seen=None, created_at=now, updated_at=now, version=1,
    )  # fmt: skip
    await store.insert_device(device, {}, TEST_ORIGIN)
    for n in range(updates):
        change = DeviceChange(reference_id=f"ref-{n}")
        await store.update_device(
            device.account_id, True, device.id, change, now_us(), TEST_ORIGIN,
            Action.DEVICE_UPDATE,
        )  # fmt: skip
    return device


async def write(store: SqlDeviceStore, statement: str, params: tuple[Any, ...] = ()) -> None:
    async def run(tx: Any) -> None:
        await tx.run(statement, params)

    await store.atomic(run)


@pytest.fixture
def log(own_store: SqlDeviceStore) -> ChangeLogService:
    return ChangeLogService(own_store, own_store)


async def test_an_honest_log_verifies_and_seq_has_no_gaps(
    own_store: SqlDeviceStore, log: ChangeLogService
) -> None:
    await populate(own_store)
    result = await log.verify()
    assert result.broken is None
    assert result.checked == result.head.seq == 11  # 4 + 1 + 6
    entries = [e async for e in log.export()]
    assert [e.seq for e in entries] == list(range(1, 12))
    times = [e.time for e in entries]
    assert times == sorted(times)  # never back in time as seq grows
    assert entries[-1].hash == result.head.hash


async def test_an_edited_entry_is_named(own_store: SqlDeviceStore, log: ChangeLogService) -> None:
    await populate(own_store)
    await write(own_store, "UPDATE change_log SET actor_id = ? WHERE seq = 8", ("mallory",))
    result = await log.verify()
    assert result.broken is not None and result.broken.seq == 8
    assert "edited" in result.broken.problem


async def test_an_edited_record_is_named(own_store: SqlDeviceStore, log: ChangeLogService) -> None:
    await populate(own_store)
    rows = await own_store.runner().rows("SELECT after FROM change_log WHERE seq = 9")
    tampered = rows[0][0].replace('"ref-3"', '"ref-X"')
    assert tampered != rows[0][0]
    await write(own_store, "UPDATE change_log SET after = ? WHERE seq = 9", (tampered,))
    result = await log.verify()
    assert result.broken is not None and result.broken.seq == 9


async def test_a_removed_entry_is_named(own_store: SqlDeviceStore, log: ChangeLogService) -> None:
    await populate(own_store)
    await write(own_store, "DELETE FROM change_log WHERE seq = 7")
    result = await log.verify()
    assert result.broken is not None and result.broken.seq == 7
    assert "missing" in result.broken.problem


async def test_a_removed_last_entry_is_caught_by_the_head(
    own_store: SqlDeviceStore, log: ChangeLogService
) -> None:
    await populate(own_store)
    await write(own_store, "DELETE FROM change_log WHERE seq = 11")
    result = await log.verify()
    assert result.broken is not None and result.broken.seq == 11


async def test_an_inserted_entry_is_named(own_store: SqlDeviceStore, log: ChangeLogService) -> None:
    """Entries renumbered to make room for a forged one, re-hashed from there on with the
    same function: the forger lacks nothing but the head, which no longer matches."""
    await populate(own_store)
    entries = [e async for e in log.export()]
    forged = msgspec.structs.replace(entries[5], seq=6, actor_id="mallory", request_id="forged")
    # shift 6..12 up by one (from the top, so the primary key never collides)
    for entry in reversed(entries[5:]):
        await write(
            own_store, "UPDATE change_log SET seq = ? WHERE seq = ?", (entry.seq + 1, entry.seq)
        )
    prev = entries[4].hash
    forged = msgspec.structs.replace(forged, prev_hash=prev)
    await write(own_store, "INSERT INTO change_log VALUES (" + ", ".join("?" * 15) + ")",
                change_log.entry_row(forged, entry_hash(prev, forged)))  # fmt: skip
    result = await log.verify()
    assert result.broken is not None and result.broken.seq == 7  # the next one no longer links
    assert "previous hash" in result.broken.problem


async def test_reordered_entries_are_named(
    own_store: SqlDeviceStore, log: ChangeLogService
) -> None:
    await populate(own_store)
    await write(own_store, "UPDATE change_log SET seq = 100 WHERE seq = 9")
    await write(own_store, "UPDATE change_log SET seq = 9 WHERE seq = 10")
    await write(own_store, "UPDATE change_log SET seq = 10 WHERE seq = 100")
    result = await log.verify()
    assert result.broken is not None and result.broken.seq == 9


async def test_pruning_keeps_the_chain_verifiable(
    own_store: SqlDeviceStore, log: ChangeLogService
) -> None:
    await populate(own_store)
    entries = [e async for e in log.export()]
    cutoff = entries[7].time  # entries 1..7 are older (or a batch of the same µs: fewer)
    pruned = await log.prune(cutoff, batch=3)  # several small batches
    kept = [e async for e in log.export()]
    assert pruned == len(entries) - len(kept) > 0
    assert all(e.time >= cutoff for e in kept)
    result = await log.verify()
    assert result.broken is None and result.checked == len(kept)
    assert result.head.pruned_seq == kept[0].seq - 1
    # ... and a removal right after the pruned mark is still caught
    await write(own_store, "DELETE FROM change_log WHERE seq = ?", (kept[0].seq,))
    result = await log.verify()
    assert result.broken is not None and result.broken.seq == kept[0].seq


async def test_pruning_never_removes_the_newest_entry(
    own_store: SqlDeviceStore, log: ChangeLogService
) -> None:
    await populate(own_store, updates=1)
    await log.prune(now_us() + 10**9)  # everything is older than that
    kept = [e async for e in log.export()]
    assert [e.seq for e in kept] == [(await own_store.change_head()).seq]
    assert (await log.verify()).broken is None


async def test_an_entry_kept_below_a_moved_pruned_mark_is_named(
    own_store: SqlDeviceStore, log: ChangeLogService
) -> None:
    """Edit entry 10, then move the pruned mark over it (pruned_seq 10, pruned_hash its
    hash): the entry is still stored and served, so verify checks it, and fails."""
    await populate(own_store, updates=8)  # seq 1..13
    await write(own_store, "UPDATE change_log SET request_id = 'forged' WHERE seq = 10")
    entries = {e.seq: e async for e in log.export()}
    await write(
        own_store, "UPDATE change_head SET pruned_seq = 10, pruned_hash = ? WHERE one = 1",
        (entries[10].hash,),
    )  # fmt: skip
    result = await log.verify()
    assert result.broken is not None and result.broken.seq == 1
    assert result.broken.problem == "entry 1 is still stored below the pruned mark"
    # ... and with entries 1..9 really deleted, entry 10 itself is named
    await write(own_store, "DELETE FROM change_log WHERE seq < 10")
    result = await log.verify()
    assert result.broken is not None and result.broken.seq == 10
    assert "below the pruned mark" in result.broken.problem


async def test_verify_reports_the_oldest_kept_entry_and_warns_of_a_young_one(
    own_store: SqlDeviceStore, log: ChangeLogService
) -> None:
    """Deleting the oldest entries and moving the pruned mark over them verifies (the
    chain cannot tell), but the oldest kept entry is then younger than retention prunes."""
    await populate(own_store)
    honest = await log.verify()
    assert (honest.oldest_seq, honest.head.pruned_seq) == (1, 0)
    assert honest.truncation_warning(400, now_us()) is None
    entries = {e.seq: e async for e in log.export()}
    await write(own_store, "DELETE FROM change_log WHERE seq <= 5")
    await write(
        own_store, "UPDATE change_head SET pruned_seq = 5, pruned_hash = ? WHERE one = 1",
        (entries[5].hash,),
    )  # fmt: skip
    result = await log.verify()
    assert result.broken is None  # truncation at the start: undetectable by the chain
    assert (result.oldest_seq, result.oldest_time) == (6, entries[6].time)
    warning = result.truncation_warning(400, now_us())
    assert warning is not None and "seq 5" in warning and "400-day" in warning
    assert result.truncation_warning(0, now_us()) is not None  # 0: nothing is ever pruned
    later = entries[6].time + 401 * 86_400 * 1_000_000  # as old as retention prunes to
    assert result.truncation_warning(400, later) is None


async def test_an_entry_stored_below_seq_1_is_named(
    own_store: SqlDeviceStore, log: ChangeLogService
) -> None:
    """A row slipped in at seq 0 or below (a device's history would show it) is read too."""
    await populate(own_store, updates=2)
    await write(
        own_store,
        f"INSERT INTO change_log ({sql.CHANGE_COLUMNS}) SELECT -7, time, account_id, live_mode,"
        " actor_kind, actor_id, request_id, action, object_type, object_id, object_version,"
        " before, after, prev_hash, hash FROM change_log WHERE seq = 5",
    )
    result = await log.verify()
    assert result.broken is not None and result.broken.seq == -7
    assert result.broken.problem == "entry -7 is still stored below the pruned mark"
