"""Group commit on both stores: concurrent writes share commits, each is durable once
answered, and a write that fails in a batch fails alone (and, on SQLite, transactions)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devreg.changelog.entries import Action
from devreg.core.records import DeviceStatus
from devreg.core.store import DeviceChange, DuplicateValue
from devreg.storage import migrate_store, open_store, sql
from devreg.storage.postgres import PostgresDeviceStore
from devreg.storage.sqlite import SqliteDeviceStore
from tests.storage.conftest import NOW, device_for, stored_account
from tests.support.origins import TEST_ORIGIN
from tests.support.server import STORES

Grouped = SqliteDeviceStore | PostgresDeviceStore


async def open_sqlite(tmp_path: Path) -> SqliteDeviceStore:
    await migrate_store(None, tmp_path)
    return SqliteDeviceStore(tmp_path / "devreg.sqlite3")


@pytest.fixture(params=STORES)
def grouped_url(request: pytest.FixtureRequest) -> str | None:
    """Each store's database in turn (None: SQLite in tmp_path)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return None


async def open_grouped(url: str | None, tmp_path: Path) -> Grouped:
    await migrate_store(url, tmp_path)
    opened = await open_store(url, tmp_path)
    assert isinstance(opened, SqliteDeviceStore | PostgresDeviceStore)
    return opened


@pytest.fixture
async def grouped(grouped_url: str | None, tmp_path: Path) -> AsyncIterator[Grouped]:
    opened = await open_grouped(grouped_url, tmp_path)
    yield opened
    await opened.close()


async def test_concurrent_writes_share_commits_and_all_are_on_disk(
    grouped_url: str | None, tmp_path: Path
) -> None:
    store = await open_grouped(grouped_url, tmp_path)
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
    reopened = await open_grouped(grouped_url, tmp_path)
    for n, device in enumerate(devices):
        found = await reopened.get_device(account.id, True, device.id)
        assert found is not None and found.reference_id == f"new-{n}"
    await reopened.close()


async def test_a_failing_write_fails_alone_in_its_batch(grouped: Grouped) -> None:
    store = grouped
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
    grouped: Grouped,
) -> None:
    """A batch's log entries are inserted together before its COMMIT: those of a write
    that failed after appending are dropped with it, and the others keep one chain."""
    from msgspec.structs import replace

    from devreg.changelog import changes
    from devreg.changelog.service import ChangeLogService
    from devreg.storage import change_log

    store = grouped
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


@pytest.mark.postgres
async def test_a_write_that_loses_a_deadlock_between_two_workers_runs_again(
    postgres_url: str, tmp_path: Path
) -> None:
    """Two workers' batches each hold a device the other's next write wants: the wait is
    given up (lock_timeout, or PostgreSQL's deadlock detection), the write is undone and
    runs again in a later batch, and every caller is answered with success."""
    first = await open_grouped(postgres_url, tmp_path)
    second = await open_grouped(postgres_url, tmp_path)
    account = await stored_account(first)
    one, two = device_for(account), device_for(account)
    for device in (one, two):
        await first.insert_device(device, {}, TEST_ORIGIN)
    both_hold_one = asyncio.Event()
    runs: list[str] = []
    waiting: list[str] = []

    def write(name: str, device_id: bytes, wait: bool):  # type: ignore[no-untyped-def]
        async def work(tx):  # type: ignore[no-untyped-def]
            if wait:  # not before the other batch holds its first device
                waiting.append(name)
                if len(waiting) == 2:
                    both_hold_one.set()
                await both_hold_one.wait()
            runs.append(name)
            await tx.run("UPDATE devices SET reference_id = ? WHERE id = ?", (name, device_id))
            if not wait:
                await asyncio.sleep(0.05)  # let the other batch take its first device
            return name

        return work

    results = await asyncio.gather(
        first.atomic(write("a1", one.id, False)),
        first.atomic(write("a2", two.id, True)),
        second.atomic(write("b1", two.id, False)),
        second.atomic(write("b2", one.id, True)),
        return_exceptions=True,
    )
    assert results == ["a1", "a2", "b1", "b2"]
    assert isinstance(first, PostgresDeviceStore) and isinstance(second, PostgresDeviceStore)
    retried = first.group.retries + second.group.retries
    assert retried >= 1 and len(runs) == 4 + retried  # a write waiting on the other ran again
    stored = {}
    for device in (one, two):
        found = await first.get_device(account.id, True, device.id)
        assert found is not None
        stored[device.id] = found.reference_id
    # Row locks order the writes of a device: the one that ran last is the one that stands.
    writers = {one.id: ("a1", "b2"), two.id: ("b1", "a2")}
    for device_id, names in writers.items():
        assert stored[device_id] == [name for name in runs if name in names][-1]
    await first.close()
    await second.close()


@pytest.mark.postgres
async def test_two_workers_inserting_into_one_account_do_not_deadlock(
    postgres_url: str, tmp_path: Path
) -> None:
    """Inserts count the device in one of the account's count rows; batches take those
    rows only at their end, in one order, so two workers' batches never deadlock over
    them (they did when each write took its row as it went: 25 deadlocks in 400 inserts)."""
    first = await open_grouped(postgres_url, tmp_path)
    second = await open_grouped(postgres_url, tmp_path)
    assert isinstance(first, PostgresDeviceStore) and isinstance(second, PostgresDeviceStore)
    account = await stored_account(first)
    devices = [device_for(account) for _ in range(300)]
    await asyncio.gather(
        *(
            (first if n % 2 else second).insert_device(d, {}, TEST_ORIGIN)
            for n, d in enumerate(devices)
        )
    )
    assert await first.count_devices(account.id, True) == 300
    assert first.group.retries == second.group.retries == 0  # no write lost a deadlock
    assert first.group.commits < 150 and second.group.commits < 150  # batched
    await first.close()
    await second.close()


@pytest.mark.postgres
async def test_a_write_waiting_for_a_held_row_does_not_hold_up_the_others(
    postgres_url: str, tmp_path: Path
) -> None:
    """A write that waits for a row someone else holds (a long transaction in psql, say)
    is taken out of its batch and runs on its own, as long as the row is held: the
    worker's other writes go on meanwhile, and the waiting one succeeds once it is free."""
    import asyncpg

    store = await open_grouped(postgres_url, tmp_path)
    assert isinstance(store, PostgresDeviceStore)
    account = await stored_account(store)
    held = device_for(account)
    await store.insert_device(held, {}, TEST_ORIGIN)
    holder = await asyncpg.connect(postgres_url)
    await holder.execute("BEGIN")
    await holder.execute("SELECT 1 FROM devices WHERE id = $1 FOR UPDATE", held.id)
    blocked = asyncio.create_task(
        store.update_device(
            account.id,
            True,
            held.id,
            DeviceChange(reference_id="after"),
            NOW + 1,
            TEST_ORIGIN,
            Action.DEVICE_UPDATE,
        )
    )
    others = [device_for(account) for _ in range(5)]
    await asyncio.wait_for(
        asyncio.gather(*(store.insert_device(d, {}, TEST_ORIGIN) for d in others)), 30
    )
    assert not blocked.done()  # still waiting for the row: the others did not wait for it
    await asyncio.sleep(1.5)  # longer than five batches' lock waits: it is not given up
    assert not blocked.done()
    await holder.execute("ROLLBACK")
    await holder.close()
    updated = await asyncio.wait_for(blocked, 30)
    assert updated is not None and updated.reference_id == "after"
    assert store.group.retries == 1
    assert await store.count_devices(account.id, True) == 6
    await store.close()


async def test_a_queued_import_hears_the_batch_s_disk_full_as_507_not_a_driver_error(
    tmp_path: Path,
) -> None:
    """A queued transaction first seals the log entries of the batch's writes before it;
    if that fails (the disk is full), every caller, the transaction's too, hears the
    store's StorageFull, and nothing of the batch is kept."""
    import sqlite3

    from devreg.core.store import StorageFull

    store = await open_sqlite(tmp_path)
    account = await stored_account(store)
    head = await store.change_head()
    first, imported, last = (device_for(account) for _ in range(3))
    insert_rows = store.group._insert_rows

    async def full_once(statement: str, rows: list[object]) -> None:
        store.group._insert_rows = insert_rows  # type: ignore[method-assign]
        raise sqlite3.OperationalError("database or disk is full")

    store.group._insert_rows = full_once  # type: ignore[method-assign]

    async def bulk() -> None:
        async with store.bulk_import() as writer:
            await writer.insert_devices_bulk([imported], [], TEST_ORIGIN)

    results = await asyncio.gather(
        store.insert_device(first, {}, TEST_ORIGIN),
        bulk(),
        store.insert_device(last, {}, TEST_ORIGIN),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [StorageFull] * 3, results
    assert await store.count_devices(account.id, True) == 0
    assert (await store.change_head()).seq == head.seq
    await store.insert_device(first, {}, TEST_ORIGIN)  # space again: writes go on
    assert (await store.change_head()).seq == head.seq + 1
    await store.close()


@pytest.mark.postgres
async def test_a_write_that_keeps_losing_deadlocks_is_answered_503_and_others_go_on(
    postgres_url: str, tmp_path: Path
) -> None:
    """A write that loses its batch's deadlock runs on its own; one that loses five in a
    row there too is told the store is unavailable (a 503: retry later); the batch's
    other writes commit meanwhile."""
    from devreg.core.store import StoreUnavailable
    from devreg.storage.postgres_batch import MAX_TRIES
    from devreg.storage.postgres_runner import Contended

    store = await open_grouped(postgres_url, tmp_path)
    assert isinstance(store, PostgresDeviceStore)
    account = await stored_account(store)
    runs = 0

    async def always_loses(tx):  # type: ignore[no-untyped-def]
        nonlocal runs
        runs += 1
        await tx.rows("SELECT 1")
        raise Contended("deadlock detected (as PostgreSQL would say)")

    others = [device_for(account) for _ in range(3)]
    results = await asyncio.gather(
        store.atomic(always_loses),
        *(store.insert_device(d, {}, TEST_ORIGIN) for d in others),
        return_exceptions=True,
    )
    assert isinstance(results[0], StoreUnavailable) and "deadlocks" in str(results[0])
    assert results[1:] == [None, None, None]
    assert runs == 1 + MAX_TRIES  # once in the batch, then on its own
    assert await store.count_devices(account.id, True) == 3
    await store.close()


@pytest.mark.postgres
async def test_a_write_on_its_own_that_fails_tells_its_caller(
    postgres_url: str, tmp_path: Path
) -> None:
    """A write taken out of its batch (it lost a deadlock) that then fails for its own
    reason (a duplicate, say) answers its caller with that failure, and leaves nothing."""
    from devreg.storage.postgres_runner import Contended

    store = await open_grouped(postgres_url, tmp_path)
    assert isinstance(store, PostgresDeviceStore)
    account = await stored_account(store)
    device = device_for(account)
    runs = 0

    async def loses_then_fails(tx):  # type: ignore[no-untyped-def]
        nonlocal runs
        runs += 1
        await tx.run(sql.INSERT_DEVICE, sql.device_row(device))
        if runs == 1:
            raise Contended("deadlock detected")
        raise DuplicateValue("reference_id")

    with pytest.raises(DuplicateValue):
        await store.atomic(loses_then_fails)
    assert runs == 2 and await store.get_device(account.id, True, device.id) is None
    await store.close()


@pytest.mark.postgres
async def test_a_batch_whose_connection_breaks_answers_every_caller_with_unavailable(
    postgres_url: str, tmp_path: Path
) -> None:
    """The server ends the batch's connection under it: every write of the batch is
    told the store is unavailable, none is kept, and the next batch works."""
    from devreg.core.store import StoreUnavailable

    store = await open_grouped(postgres_url, tmp_path)
    assert isinstance(store, PostgresDeviceStore)
    account = await stored_account(store)
    devices = [device_for(account) for _ in range(4)]

    async def connection_ends(tx):  # type: ignore[no-untyped-def]
        await tx.rows("SELECT pg_terminate_backend(pg_backend_pid())")

    results = await asyncio.gather(
        store.insert_device(devices[0], {}, TEST_ORIGIN),
        store.atomic(connection_ends),
        *(store.insert_device(d, {}, TEST_ORIGIN) for d in devices[1:3]),
        return_exceptions=True,
    )
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    assert await store.count_devices(account.id, True) == 0
    await store.insert_device(devices[3], {}, TEST_ORIGIN)
    assert await store.count_devices(account.id, True) == 1
    await store.close()


async def test_a_cancelled_flush_fails_every_queued_write(grouped: Grouped) -> None:
    """At shutdown the batches' task may be cancelled: every write still queued or in the
    batch is told the store is unavailable, none waits for ever."""
    from devreg.core.store import StoreUnavailable

    store = grouped
    account = await stored_account(store)
    started = asyncio.Event()
    never = asyncio.Event()

    async def waits(tx):  # type: ignore[no-untyped-def]
        started.set()
        await never.wait()  # holds the batch (a test only: works await only their runner)

    if isinstance(store, SqliteDeviceStore):
        # SQLite runs a work inline and refuses one that awaits anything else; a queued
        # transaction holds the batch instead.
        async def held() -> None:
            async with store.transaction():
                started.set()
                await never.wait()

        first = asyncio.create_task(held())
    else:
        first = asyncio.create_task(store.atomic(waits))
    await started.wait()
    queued = [
        asyncio.create_task(store.insert_device(device_for(account), {}, TEST_ORIGIN))
        for _ in range(60)
    ]
    await asyncio.sleep(0.05)
    flushing = store.group._flushing
    assert flushing is not None
    flushing.cancel()
    await asyncio.sleep(0.01)
    never.set()  # the held transaction (SQLite) ends: its batch is gone
    results = await asyncio.wait_for(asyncio.gather(first, *queued, return_exceptions=True), 30)
    assert all(isinstance(r, StoreUnavailable | asyncio.CancelledError) for r in results), results
    assert sum(isinstance(r, StoreUnavailable) for r in results[1:]) == 60
