"""Writers in parallel (two stores on one database: two processes' worth of connections)
get strictly increasing sequence numbers with no gaps, every change is logged once, and
the chain holds, on both stores."""

from __future__ import annotations

import asyncio
import itertools

import msgspec

from devreg.changelog.entries import Action
from devreg.changelog.service import ChangeLogService
from devreg.core.clock import now_us
from devreg.core.ids import new_id
from devreg.core.store import DeviceChange, DuplicateValue
from devreg.storage import open_store
from devreg.storage.base import SqlDeviceStore
from tests.changelog.test_chain import populate
from tests.support.origins import TEST_ORIGIN

WRITES = 60  # per writer


async def test_parallel_writers_get_gapless_increasing_seqs(
    own_store: SqlDeviceStore, own_backend: str | None, tmp_path: object
) -> None:
    device = await populate(own_store, updates=0)
    other = await open_store(own_backend, tmp_path)  # type: ignore[arg-type]
    try:

        async def writer(store: SqlDeviceStore, name: str) -> int:
            done = 0
            for n in range(WRITES):
                change = DeviceChange(reference_id=f"{name}-{n}")
                await store.update_device(
                    device.account_id, True, device.id, change, now_us(), TEST_ORIGIN,
                    Action.DEVICE_UPDATE,
                )  # fmt: skip
                done += 1
            return done

        # duplicates refused meanwhile must leave no entry behind
        async def refused(store: SqlDeviceStore) -> int:
            clashes = 0
            for _ in range(WRITES // 3):
                twin = msgspec.structs.replace(device, id=new_id())  # same identifier
                try:
                    await store.insert_device(twin, {}, TEST_ORIGIN)
                except DuplicateValue:
                    clashes += 1
            return clashes

        done = await asyncio.gather(
            writer(own_store, "a"), writer(other, "b"), writer(own_store, "c"),
            writer(other, "d"), refused(own_store), refused(other),
        )  # fmt: skip
    finally:
        await other.close()
    assert done[:4] == [WRITES] * 4 and done[4:] == [WRITES // 3] * 2
    log = ChangeLogService(own_store, own_store)
    entries = [e async for e in log.export()]
    head = await own_store.change_head()
    assert [e.seq for e in entries] == list(range(1, head.seq + 1))
    updates = [e for e in entries if e.action == "device.update"]
    assert len(updates) == 4 * WRITES
    # the log's order is the order the device was written in: its version, one by one
    assert [e.object_version for e in updates] == list(range(2, 2 + 4 * WRITES))
    # and each entry's before is the one before's after: no write missed in between
    # (a before read ahead of the row's lock would miss the other process's write)
    device_entries = [e for e in entries if e.object_id == device.id]
    for previous, entry in itertools.pairwise(device_entries):
        assert entry.before == previous.after, (entry.seq, entry.before, previous.after)
    assert [e.time for e in entries] == sorted(e.time for e in entries)
    assert (await log.verify()).broken is None
