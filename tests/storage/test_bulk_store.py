"""The store's bulk path (`bulk_import`, `devices_oldest_first`), on SQLite and PostgreSQL:
one transaction for the whole import, lookups that see its own rows, keyset pages."""

from __future__ import annotations

import pytest

from devreg.core.records import Device
from devreg.core.store import DeviceStore, DuplicateValue
from devreg.storage.base import BULK_ROWS
from tests.storage.conftest import NOW, StoredAccount, device_for, stored_account
from tests.storage.test_store_d import Plant
from tests.support.origins import TEST_ORIGIN, delete_at_store


@pytest.fixture
async def account(store: DeviceStore) -> StoredAccount:
    return await stored_account(store, "Acme")


async def all_devices(store: DeviceStore, account: StoredAccount) -> list[Device]:
    found: list[Device] = []
    for live_mode in (True, False):
        found += await store.devices_oldest_first(account.id, live_mode, after=None, limit=10**6)
    return found


async def test_bulk_insert_of_several_batches_commits_devices_and_values(
    store: DeviceStore, account: StoredAccount
) -> None:
    plant = await Plant(account).store_in(store)
    count = BULK_ROWS * 2 + 34  # three multi-row INSERTs, the last one short
    devices = [plant.device(f"sensor-{n}", created_at=NOW + n) for n in range(count)]
    values = [(d.id, plant.serial, f"S{n}") for n, d in enumerate(devices)]
    values += [(devices[-1].id, plant.colour, "red")]
    async with store.bulk_import() as bulk:
        await bulk.insert_devices_bulk(devices, values, TEST_ORIGIN)

    assert await all_devices(store, account) == devices
    assert await store.get_device(account.id, True, devices[-1].id) == devices[-1]
    stored = await store.field_values([devices[0].id, devices[-1].id])
    assert stored == {
        devices[0].id: {plant.serial: "S0"},
        devices[-1].id: {plant.serial: f"S{count - 1}", plant.colour: "red"},
    }


async def test_an_exception_in_the_block_writes_nothing(
    store: DeviceStore, account: StoredAccount
) -> None:
    devices = [device_for(account, reference_id=f"r{n}") for n in range(10)]
    with pytest.raises(RuntimeError, match="refused"):
        async with store.bulk_import() as bulk:
            await bulk.insert_devices_bulk(devices, [], TEST_ORIGIN)
            assert await bulk.taken_ids([devices[0].id]) == {devices[0].id}  # inside: there
            raise RuntimeError("refused")
    assert await all_devices(store, account) == []
    assert await store.get_device(account.id, True, devices[0].id) is None


async def test_a_duplicate_the_index_refuses_rolls_the_whole_import_back(
    store: DeviceStore, account: StoredAccount
) -> None:
    stored = device_for(account, reference_id="taken")
    await store.insert_device(stored, {}, TEST_ORIGIN)
    first = [device_for(account, reference_id=f"r{n}") for n in range(5)]
    clashing = [device_for(account, reference_id="taken")]
    with pytest.raises(DuplicateValue) as refused:
        async with store.bulk_import() as bulk:
            await bulk.insert_devices_bulk(first, [], TEST_ORIGIN)
            await bulk.insert_devices_bulk(clashing, [], TEST_ORIGIN)
    assert refused.value.field == "reference_id"
    assert await all_devices(store, account) == [stored]


async def test_lookups_are_scoped_and_see_rows_inserted_in_the_same_import(
    store: DeviceStore, account: StoredAccount
) -> None:
    other = await stored_account(store, "Globex")
    plant = await Plant(account).store_in(store)
    live = device_for(account, reference_id="live-ref")
    test = device_for(account, live_mode=False, reference_id="test-ref")
    gone = device_for(account, reference_id="deleted-ref")
    elsewhere = device_for(other, reference_id="other-ref")
    sensor = plant.device("sensor-1")
    for device in (live, test, gone, elsewhere, sensor):
        await store.insert_device(device, {}, TEST_ORIGIN)
    await delete_at_store(store, account.id, True, gone.id, NOW)

    fresh = device_for(account, reference_id="fresh-ref")
    references = ["live-ref", "test-ref", "deleted-ref", "other-ref", "fresh-ref", "unknown"]
    async with store.bulk_import() as bulk:
        assert await bulk.taken_references(account.id, True, references) == {"live-ref": live.id}
        assert await bulk.taken_references(account.id, False, references) == {"test-ref": test.id}
        assert await bulk.taken_identifiers(plant.division.id, True, ["sensor-1", "x"]) == {
            "sensor-1": sensor.id
        }
        assert await bulk.taken_identifiers(plant.division.id, False, ["sensor-1"]) == {}
        assert await bulk.taken_identifiers(account.new.division.id, True, ["sensor-1"]) == {}
        # A deleted device keeps its row, and so its id.
        assert await bulk.taken_ids([gone.id, elsewhere.id, fresh.id]) == {gone.id, elsewhere.id}
        await bulk.insert_devices_bulk([fresh], [], TEST_ORIGIN)
        assert await bulk.taken_references(account.id, True, ["fresh-ref"]) == {
            "fresh-ref": fresh.id
        }
        assert await bulk.taken_ids([fresh.id]) == {fresh.id}


async def test_lookups_of_more_values_than_one_statement_takes(
    store: DeviceStore, account: StoredAccount
) -> None:
    devices = [device_for(account, reference_id=f"r{n}") for n in range(BULK_ROWS + 7)]
    async with store.bulk_import() as bulk:
        await bulk.insert_devices_bulk(devices, [], TEST_ORIGIN)
    wanted = [f"r{n}" for n in range(BULK_ROWS * 2)]
    async with store.bulk_import() as bulk:
        held = await bulk.taken_references(account.id, True, wanted)
        assert held == {d.reference_id: d.id for d in devices}
        assert await bulk.taken_ids([d.id for d in devices]) == {d.id for d in devices}


async def test_oldest_first_pages_follow_creation_then_id_and_skip_deleted(
    store: DeviceStore, account: StoredAccount
) -> None:
    # Three devices share a creation time: the id decides their order.
    devices = [device_for(account, created_at=NOW + n // 3) for n in range(7)]
    deleted = device_for(account, created_at=NOW)
    test_mode = device_for(account, live_mode=False, created_at=NOW)
    for device in [*devices, deleted, test_mode]:
        await store.insert_device(device, {}, TEST_ORIGIN)
    await delete_at_store(store, account.id, True, deleted.id, NOW)

    pages: list[list[Device]] = []
    after: tuple[int, bytes] | None = None
    while True:
        page = await store.devices_oldest_first(account.id, True, after=after, limit=3)
        if not page:
            break
        pages.append(page)
        after = (page[-1].created_at, page[-1].id)
    assert [len(page) for page in pages] == [3, 3, 1]
    expected = sorted(devices, key=lambda d: (d.created_at, d.id))
    assert [d for page in pages for d in page] == expected
    only_test = await store.devices_oldest_first(account.id, False, after=None, limit=3)
    assert only_test == [test_mode]
