"""Dialect D's device list at the store (issue 12 item 8), both backends: a
`device_identifier` filter without `division_id` (and a `division_id` or
`device_profile_id` filter) is an index lookup, not a scan of the account's devices; the
unfiltered total comes from the device counter (no COUNT(*) over devices), which inserts,
deletes and bulk imports keep exact; a filtered count stops at its bound."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from devreg.core.bulk_import import import_devices
from devreg.core.devices import DeviceService
from devreg.core.errors import Conflict
from devreg.core.ids import new_id
from devreg.core.profiles import ProfileFlags
from devreg.core.records import DeviceStatus
from devreg.core.store import DeviceFilter, DeviceStore, MissingReference
from devreg.storage import sql
from devreg.storage.base import Params, SqlDeviceStore, SqlRunner
from devreg.storage.postgres import numbered
from tests.core.conftest import make_tenant
from tests.support.origins import TEST_ORIGIN

SEEDED = 20_000


async def seed(
    store: DeviceStore, account_id: bytes, count: int, profile: str | None = None, tag: str = "id"
) -> None:
    lines = (
        json.dumps(
            {"device_identifier": f"{tag}-{n}", "live_mode": True}
            | ({"device_profile": {"name": profile}} if profile else {})
        ).encode()
        for n in range(count)
    )
    assert await import_devices(store, account_id, lines, origin=TEST_ORIGIN) == count


async def plan(backend: str | None, tmp_path: Path, statement: str, params: list[Any]) -> str:
    """The backend's own query plan for `statement`, as text."""
    if backend is None:
        conn = sqlite3.connect(tmp_path / "devreg.sqlite3")
        try:
            rows = conn.execute("EXPLAIN QUERY PLAN " + statement, params).fetchall()
        finally:
            conn.close()
        return "\n".join(str(row[3]) for row in rows)
    import asyncpg

    pg = await asyncpg.connect(backend)
    try:
        await pg.execute("ANALYZE devices")  # as autovacuum would after an import this size
        rows = await pg.fetch("EXPLAIN " + numbered(statement), *params)
    finally:
        await pg.close()
    return "\n".join(row[0] for row in rows)


FILTERS = {
    "device_identifier": "devices_identifier_lookup",
    "division_id": "devices_division_listing",
    "device_profile_id": "devices_profile_listing",
}


@pytest.mark.parametrize("given", FILTERS)
async def test_each_indexed_filter_is_an_index_lookup(
    store: DeviceStore, backend: str | None, tmp_path: Path, given: str
) -> None:
    """A small division and profile in an account of SEEDED devices: each filter alone reads
    its own index, never the account's devices (SQLite keeps no statistics; PostgreSQL's
    are made fresh, as autovacuum would after an import this size)."""
    tenant = await make_tenant(store)
    service = DeviceService(store)
    division = await service.profiles.create_division(tenant.live, "Small")
    small = await service.profiles.create_profile(
        tenant.live, "Small", division.id, [], ProfileFlags()
    )
    await seed(store, tenant.account_id, SEEDED)
    await seed(store, tenant.account_id, 10, profile="Small", tag="small")
    where = {
        "device_identifier": DeviceFilter(device_identifier=f"id-{SEEDED // 2}"),
        "division_id": DeviceFilter(division_id=division.id),
        "device_profile_id": DeviceFilter(profile_id=small.profile.id),
    }[given]
    page, count, page_params, count_params = sql.query_devices_statements(
        tenant.account_id, True, where, 20, 0
    )
    ids, _, _, _ = sql.query_devices_statements(tenant.account_id, True, where, 20, 0, columns="id")
    for statement, params in (
        (page, page_params),
        (ids, page_params),  # what the list runs: the rows follow by id, a batch at a time
        (count, [*count_params, 10_000]),
    ):
        shown = await plan(backend, tmp_path, statement, params)
        assert FILTERS[given] in shown, shown
        assert "SCAN devices" not in shown and "Seq Scan" not in shown, shown
    found, total = await service.query(tenant.live, where, limit=20, offset=0)
    assert total == len(found) == (1 if given == "device_identifier" else 10)
    # The page's rows, then: by primary key.
    by_ids = sql.in_list(sql.SELECT_DEVICES_BY_IDS, len(found))
    shown = await plan(backend, tmp_path, by_ids, [d.id for d in found])
    assert "sqlite_autoindex_devices_1" in shown or "devices_pkey" in shown, shown


class Recording:
    """A runner that notes every statement it runs."""

    def __init__(self, real: SqlRunner, seen: list[str]) -> None:
        self.real = real
        self.seen = seen

    async def rows(self, statement: str, params: Params = ()) -> list[Sequence[Any]]:
        self.seen.append(statement)
        return await self.real.rows(statement, params)

    async def run(self, statement: str, params: Params = ()) -> None:
        self.seen.append(statement)
        await self.real.run(statement, params)


async def test_the_unfiltered_total_is_the_counter(
    store: DeviceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await make_tenant(store)
    service = DeviceService(store)
    await seed(store, tenant.account_id, 50)
    made = [await service.create(tenant.live, f"r{n}") for n in range(5)]
    for n in range(5):
        made.append(await service.create_in_profile(tenant.live, f"d{n}", None, None, []))
    await service.create(tenant.test, "test mode")
    await service.delete(tenant.live, made[0].id)
    await service.delete(tenant.live, made[6].id)
    with pytest.raises(Exception, match="No such device"):
        await service.delete(tenant.live, made[0].id)  # twice: counted once
    await service.set_status(tenant.live, made[1].id, DeviceStatus.DISABLED)  # still counted
    assert isinstance(store, SqlDeviceStore)
    seen: list[str] = []
    real_runner = store.runner
    monkeypatch.setattr(store, "runner", lambda: Recording(real_runner(), seen))
    page = await service.query_page(tenant.live, DeviceFilter(), limit=1, offset=0)
    assert (page.total, page.total_exact) == (50 + 10 - 2, True)
    assert not [s for s in seen if "COUNT(*) FROM devices" in s or "FROM (SELECT 1" in s], seen
    assert (await service.query_page(tenant.test, DeviceFilter(), limit=1, offset=0)).total == 1


async def test_the_counter_stays_exact_under_concurrent_creates_and_deletes(
    store: DeviceStore,
) -> None:
    """200 creates at once (one group commit on SQLite, the pool's connections racing for
    the same counter rows on PostgreSQL), then half of them deleted at once."""
    tenant = await make_tenant(store)
    service = DeviceService(store)
    made = await asyncio.gather(
        *(service.create_in_profile(tenant.live, f"c{n}", None, None, []) for n in range(200))
    )
    await asyncio.gather(*(service.delete(tenant.live, device.id) for device in made[::2]))
    counted = await store.count_matching(
        tenant.account_id, True, DeviceFilter(created_from=0), at_most=10_000
    )
    assert await store.count_devices(tenant.account_id, True) == counted == 100


async def test_a_filtered_total_is_bounded(
    store: DeviceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await make_tenant(store)
    await seed(store, tenant.account_id, 30)
    monkeypatch.setattr("devreg.core.devices.TOTAL_COUNT_BOUND", 10)
    service = DeviceService(store)
    where = DeviceFilter(created_from=0)
    first = await service.query_page(tenant.live, where, limit=5, offset=0)
    assert (first.total, first.total_exact) == (10, False)  # at least 10
    later = await service.query_page(tenant.live, where, limit=5, offset=25)
    assert (later.total, later.total_exact) == (30, True)
    assert len(later.ids) == 5


async def test_a_device_and_its_count_are_written_together(store: DeviceStore) -> None:
    """A refused insert leaves the counter alone, also when what fails comes after the
    device row (a value for a field removed meanwhile)."""
    tenant = await make_tenant(store)
    service = DeviceService(store)
    taken = await service.create(tenant.live, "taken")
    with pytest.raises(Conflict):
        await service.create(tenant.live, "taken")
    orphan = msgspec.structs.replace(taken, id=new_id(), reference_id=None)
    with pytest.raises(MissingReference):
        await store.insert_device(orphan, {new_id(): "a value for no field"}, TEST_ORIGIN)
    assert await store.get_device(tenant.account_id, True, orphan.id) is None
    assert await store.count_devices(tenant.account_id, True) == 1
