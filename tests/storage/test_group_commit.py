"""Group commit on SQLite: concurrent writes share commits, each is durable once answered,
and a write that fails in a batch fails alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

from devreg.changelog.entries import Action
from devreg.core.records import DeviceStatus
from devreg.core.store import DeviceChange, DuplicateValue
from devreg.storage import migrate_store, sql
from devreg.storage.sqlite import SqliteDeviceStore
from tests.storage.conftest import NOW, device_for, stored_account
from tests.support.origins import TEST_ORIGIN


async def open_sqlite(tmp_path: Path) -> SqliteDeviceStore:
    await migrate_store(None, tmp_path)
    return SqliteDeviceStore(tmp_path / "devreg.sqlite3")


async def test_concurrent_writes_share_commits_and_all_are_on_disk(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path)
    account = await stored_account(store)
    devices = [device_for(account, reference_id=f"r{n}") for n in range(40)]
    await asyncio.gather(*(store.insert_device(d, {}, TEST_ORIGIN) for d in devices))
    before = store.group.commits
    updated = await asyncio.gather(
        *(
            store.update_device(
                account.id,
                True,
                d.id,
                DeviceChange(reference_id=f"new-{n}"),
                NOW + 1,
                TEST_ORIGIN,
                Action.DEVICE_UPDATE,
            )
            for n, d in enumerate(devices)
        )
    )
    assert all(u is not None for u in updated)
    batches = store.group.commits - before
    assert 1 <= batches < len(devices)  # 40 answered writes, fewer commits
    await store.close()
    # A fresh connection (as after a restart) finds every answered write.
    reopened = SqliteDeviceStore(tmp_path / "devreg.sqlite3")
    for n, device in enumerate(devices):
        found = await reopened.get_device(account.id, True, device.id)
        assert found is not None and found.reference_id == f"new-{n}"
    await reopened.close()


async def test_a_failing_write_fails_alone_in_its_batch(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path)
    account = await stored_account(store)
    taken = device_for(account, reference_id="taken")
    others = [device_for(account) for _ in range(5)]
    for device in (taken, *others):
        await store.insert_device(device, {}, TEST_ORIGIN)
    results = await asyncio.gather(
        store.update_device(
            account.id,
            True,
            others[0].id,
            DeviceChange(reference_id="taken"),
            NOW + 1,
            TEST_ORIGIN,
            Action.DEVICE_UPDATE,
        ),
        *(
            store.update_device(
                account.id,
                True,
                d.id,
                DeviceChange(reference_id=f"free-{n}"),
                NOW + 1,
                TEST_ORIGIN,
                Action.DEVICE_UPDATE,
            )
            for n, d in enumerate(others[1:])
        ),
        return_exceptions=True,
    )
    assert isinstance(results[0], DuplicateValue) and results[0].field == "reference_id"
    assert [getattr(r, "reference_id", None) for r in results[1:]] == [
        f"free-{n}" for n in range(4)
    ]
    unchanged = await store.get_device(account.id, True, others[0].id)
    assert unchanged == others[0]
    await store.close()


async def test_a_batch_that_cannot_commit_answers_every_caller_with_unavailable(
    tmp_path: Path,
) -> None:
    store = await open_sqlite(tmp_path)
    account = await stored_account(store)
    devices = [device_for(account) for _ in range(3)]
    for device in devices:
        await store.insert_device(device, {}, TEST_ORIGIN)
    # Another connection holds the write lock past the busy timeout.
    blocker = SqliteDeviceStore(tmp_path / "devreg.sqlite3")
    blocker._conn.execute("PRAGMA busy_timeout = 0")
    blocker._conn.execute("BEGIN IMMEDIATE")
    store._conn.execute("PRAGMA busy_timeout = 50")
    try:
        results = await asyncio.gather(
            *(
                store.update_device(
                    account.id,
                    True,
                    d.id,
                    DeviceChange(status=DeviceStatus.DISABLED),
                    1,
                    TEST_ORIGIN,
                    Action.DEVICE_DISABLE,
                )
                for d in devices
            ),
            return_exceptions=True,
        )
    finally:
        blocker._conn.execute("ROLLBACK")
        await blocker.close()
    assert all(type(r).__name__ == "StoreUnavailable" for r in results), results
    for device in devices:
        assert await store.get_device(account.id, True, device.id) == device
    await store.close()


# --- transactions in the batch ------------------------------------------------------------


async def test_transactions_share_commits_with_single_writes(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path)
    first = await stored_account(store)
    before = store.group.commits
    accounts, _ = await asyncio.gather(
        asyncio.gather(*(stored_account(store, f"tenant {n}") for n in range(10))),
        asyncio.gather(
            *(store.insert_device(device_for(first), {}, TEST_ORIGIN) for _ in range(10))
        ),
    )
    assert 1 <= store.group.commits - before < 20  # 20 answered writes, fewer commits
    await store.close()
    reopened = SqliteDeviceStore(tmp_path / "devreg.sqlite3")
    for account in accounts:  # every row of each multi-statement write is there
        assert await reopened.find_api_key(account.live_key.key_hash) == account.live_key
        assert await reopened.default_profile(account.id) == account.new.profile
    await reopened.close()


async def test_a_failing_transaction_rolls_back_alone(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path)
    account = await stored_account(store)
    doomed, kept = device_for(account), [device_for(account) for _ in range(5)]

    async def half_done_then_fails() -> None:
        async with store.transaction() as tx:
            await tx.run(sql.INSERT_DEVICE, sql.device_row(doomed))
            raise RuntimeError("the rule that decides after the first write says no")

    results = await asyncio.gather(
        half_done_then_fails(),
        *(store.insert_device(d, {}, TEST_ORIGIN) for d in kept),
        return_exceptions=True,
    )
    assert isinstance(results[0], RuntimeError) and results[1:] == [None] * 5
    assert await store.get_device(account.id, True, doomed.id) is None
    for device in kept:
        assert await store.get_device(account.id, True, device.id) == device
    await store.close()


async def test_nothing_is_read_before_it_is_durable(tmp_path: Path) -> None:
    """Reads outside a transaction see committed state only, never the batch being built."""
    store = await open_sqlite(tmp_path)
    account = await stored_account(store)
    device = device_for(account)
    async with store.transaction() as tx:
        await tx.run(sql.INSERT_DEVICE, sql.device_row(device))
        inside = await tx.rows(sql.SELECT_DEVICE_BY_ID, (device.id,))
        outside = await store.get_device(account.id, True, device.id)
    assert len(inside) == 1  # the transaction reads its own write...
    assert outside is None  # ...nobody else does before the commit
    assert await store.get_device(account.id, True, device.id) == device  # and after, all do
    await store.close()


async def test_a_transaction_cancelled_in_the_queue_does_not_hold_up_the_rest(
    tmp_path: Path,
) -> None:
    store = await open_sqlite(tmp_path)
    account = await stored_account(store)
    abandoned = device_for(account)

    async def insert_in_transaction() -> None:
        async with store.transaction() as tx:
            await tx.run(sql.INSERT_DEVICE, sql.device_row(abandoned))

    for delay_turns in range(4):  # cancelled before its turn, at its turn, and after
        task = asyncio.create_task(insert_in_transaction())
        for _ in range(delay_turns):
            await asyncio.sleep(0)
        task.cancel()
        later = device_for(account)
        await asyncio.wait_for(store.insert_device(later, {}, TEST_ORIGIN), timeout=5)
        assert await store.get_device(account.id, True, later.id) == later
        await asyncio.gather(task, return_exceptions=True)
    await store.close()


async def test_a_write_failing_after_its_log_entry_leaves_no_entry_and_an_unbroken_chain(
    tmp_path: Path,
) -> None:
    """A batch's log entries are inserted together before its COMMIT: those of a write
    that failed after appending are dropped with it, and the others keep one chain."""
    from msgspec.structs import replace

    from devreg.changelog import changes
    from devreg.changelog.service import ChangeLogService
    from devreg.storage import change_log

    store = await open_sqlite(tmp_path)
    account = (await stored_account(store)).new.account
    head = await store.change_head()

    def write(version: str, fail: bool):  # type: ignore[no-untyped-def]
        async def work(tx):  # type: ignore[no-untyped-def]
            renamed = replace(account, api_version=version)
            await change_log.append(
                tx, TEST_ORIGIN, [changes.updated_account(account, renamed)], NOW + 1
            )
            if fail:
                raise ValueError("after its entry")
            return version

        return store.atomic(work)

    results = await asyncio.gather(
        write("a", False), write("b", True), write("c", False), return_exceptions=True
    )
    assert results[0] == "a" and isinstance(results[1], ValueError) and results[2] == "c"
    entries = await store.changes_after(head.seq, 10)
    assert [e.seq for e in entries] == [head.seq + 1, head.seq + 2]
    assert ['"a"' in (e.after or "") for e in entries] == [True, False]
    assert ['"c"' in (e.after or "") for e in entries] == [False, True]
    verification = await ChangeLogService(store, store).verify()
    assert verification.broken is None and verification.head.seq == head.seq + 2
    await store.close()
