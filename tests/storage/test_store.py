"""The DeviceStore contract, on SQLite and on PostgreSQL (the `store` fixture runs both)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import msgspec
import pytest

from devreg.auth.api_keys import hash_key, new_api_key
from devreg.changelog.entries import Action
from devreg.core.accounts import build_account
from devreg.core.ids import new_id
from devreg.core.records import Device, DeviceStatus
from devreg.core.store import DeviceChange, DeviceStore, DuplicateValue
from devreg.storage.sqlite import SqliteDeviceStore
from tests.storage.conftest import NOW, device_for, stored_account
from tests.support.origins import TEST_ORIGIN, delete_at_store

# --- accounts and keys -----------------------------------------------------------------


async def test_store_answers_ping(store: DeviceStore) -> None:
    await store.ping()


async def test_create_account_then_find_its_keys(store: DeviceStore) -> None:
    account = await stored_account(store)
    live = await store.find_api_key(hash_key(account.live_secret))
    test = await store.find_api_key(hash_key(account.test_secret))
    assert live == account.live_key
    assert test == account.test_key
    assert live is not None and live.live_mode is True and live.account_id == account.id
    assert test is not None and test.live_mode is False
    assert live.revoked_at is None


async def test_an_account_keeps_its_default_api_version(store: DeviceStore) -> None:
    plain = await stored_account(store)
    assert await store.account_api_version(plain.id) == "2025-09-14.anode"
    old = build_account("Old", NOW, "2024-08-24.zero")
    await store.create_account(old.account, [], old.division, old.profile, TEST_ORIGIN)
    assert await store.account_api_version(old.account.id) == "2024-08-24.zero"
    assert (
        await store.set_account_api_version(old.account.id, "2025-09-14.anode", TEST_ORIGIN) is True
    )
    assert await store.account_api_version(old.account.id) == "2025-09-14.anode"
    assert await store.account_api_version(plain.id) == "2025-09-14.anode"  # only that one
    assert await store.account_api_version(b"\x00" * 16) is None
    assert (
        await store.set_account_api_version(b"\x00" * 16, "2024-08-24.zero", TEST_ORIGIN) is False
    )


async def test_unknown_key_hash_finds_nothing(store: DeviceStore) -> None:
    account = await stored_account(store)
    assert await store.find_api_key(hash_key(account.live_secret + "x")) is None
    assert await store.find_api_key(b"\x00" * 32) is None


async def test_revoked_key_keeps_its_revocation_time(store: DeviceStore) -> None:
    new = build_account("Revoked Inc", NOW)
    secret, key = new_api_key(new.account.id, True, NOW)
    revoked = msgspec.structs.replace(key, revoked_at=NOW + 5)
    await store.create_account(new.account, [revoked], new.division, new.profile, TEST_ORIGIN)
    found = await store.find_api_key(hash_key(secret))
    assert found is not None
    assert found.revoked_at == NOW + 5


async def test_create_account_is_all_or_nothing(store: DeviceStore) -> None:
    first = await stored_account(store, "First")
    second = build_account("Second", NOW)
    _, fresh_key = new_api_key(second.account.id, True, NOW)
    # the second key collides with a stored one, after the account row is already written
    clashing = msgspec.structs.replace(first.live_key, id=new_id(), account_id=second.account.id)
    with pytest.raises(Exception):  # the driver's own unique-violation error
        await store.create_account(
            second.account, [fresh_key, clashing], second.division, second.profile, TEST_ORIGIN
        )
    assert await store.default_profile(second.account.id) is None
    assert await store.find_api_key(fresh_key.key_hash) is None
    # and the store is still usable afterwards (no transaction left open)
    again = await stored_account(store, "Third")
    assert await store.default_profile(again.id) == again.new.profile


async def test_default_profile(store: DeviceStore) -> None:
    account = await stored_account(store)
    profile = await store.default_profile(account.id)
    assert profile == account.new.profile
    assert profile is not None
    assert (profile.allow_read, profile.allow_write, profile.allow_renew) == (True, True, True)
    assert profile.division_id == account.new.division.id
    assert await store.default_profile(new_id()) is None


# --- devices ---------------------------------------------------------------------------


async def test_insert_then_get_roundtrip(store: DeviceStore) -> None:
    account = await stored_account(store)
    device = msgspec.structs.replace(
        device_for(account, reference_id="ref-1"),
        device_identifier="serial-1",
        allow_write=False,
        last_seen=NOW + 7,
        updated_at=NOW + 9,
        version=3,
    )
    await store.insert_device(device, {}, TEST_ORIGIN)
    assert await store.get_device(account.id, True, device.id) == device


async def test_test_mode_device_roundtrip_keeps_false_booleans(store: DeviceStore) -> None:
    account = await stored_account(store)
    device = msgspec.structs.replace(
        device_for(account, live_mode=False),
        allow_read=False,
        allow_write=False,
        allow_renew=False,
    )
    await store.insert_device(device, {}, TEST_ORIGIN)
    got = await store.get_device(account.id, False, device.id)
    assert got == device
    assert got is not None and got.live_mode is False and got.allow_read is False


async def test_get_is_scoped_to_account_and_mode(store: DeviceStore) -> None:
    account = await stored_account(store)
    other = await stored_account(store, "Other")
    device = device_for(account)
    await store.insert_device(device, {}, TEST_ORIGIN)
    assert await store.get_device(account.id, False, device.id) is None
    assert await store.get_device(other.id, True, device.id) is None
    assert await store.get_device(account.id, True, new_id()) is None


async def test_device_of_unknown_account_is_refused(store: DeviceStore) -> None:
    account = await stored_account(store)
    orphan = msgspec.structs.replace(device_for(account), account_id=new_id())
    with pytest.raises(Exception):  # foreign key violation, on both backends
        await store.insert_device(orphan, {}, TEST_ORIGIN)
    assert await store.get_device(orphan.account_id, True, orphan.id) is None


async def test_list_newest_first_with_limit(store: DeviceStore) -> None:
    account = await stored_account(store)
    devices = [device_for(account, created_at=NOW + n) for n in range(6)]
    for device in devices:
        await store.insert_device(device, {}, TEST_ORIGIN)
    await store.insert_device(
        device_for(account, live_mode=False), {}, TEST_ORIGIN
    )  # other mode: not listed
    listed = await store.list_devices(account.id, True, limit=100)
    assert [d.id for d in listed] == [d.id for d in reversed(devices)]
    assert listed == list(reversed(devices))
    top = await store.list_devices(account.id, True, limit=2)
    assert [d.id for d in top] == [devices[5].id, devices[4].id]


async def test_list_breaks_created_at_ties_by_id(store: DeviceStore) -> None:
    account = await stored_account(store)
    devices = [device_for(account, created_at=NOW) for _ in range(8)]
    for device in devices:
        await store.insert_device(device, {}, TEST_ORIGIN)
    listed = await store.list_devices(account.id, True, limit=100)
    assert [d.id for d in listed] == sorted((d.id for d in devices), reverse=True)


async def test_list_with_cursor_in_both_directions(store: DeviceStore) -> None:
    account = await stored_account(store)
    devices = [device_for(account, created_at=NOW + n) for n in range(7)]
    for device in devices:
        await store.insert_device(device, {}, TEST_ORIGIN)
    middle = devices[3]
    cursor = (middle.created_at, middle.id)
    older = await store.list_devices(account.id, True, limit=2, cursor=cursor)
    assert [d.id for d in older] == [devices[2].id, devices[1].id]
    newer = await store.list_devices(account.id, True, limit=2, cursor=cursor, direction="newer")
    # the two just newer than the cursor, still newest first
    assert [d.id for d in newer] == [devices[5].id, devices[4].id]


async def test_list_filters_by_reference_and_hides_deleted(store: DeviceStore) -> None:
    account = await stored_account(store)
    wanted = device_for(account, reference_id="wanted")
    await store.insert_device(wanted, {}, TEST_ORIGIN)
    await store.insert_device(device_for(account, reference_id="other"), {}, TEST_ORIGIN)
    gone = device_for(account)
    await store.insert_device(gone, {}, TEST_ORIGIN)
    await delete_at_store(store, account.id, True, gone.id, NOW)
    assert await store.list_devices(account.id, True, limit=10, reference_id="wanted") == [wanted]
    listed = await store.list_devices(account.id, True, limit=10)
    assert gone.id not in [d.id for d in listed]
    assert len(listed) == 2


async def test_update_fields_sets_only_named_columns(store: DeviceStore) -> None:
    account = await stored_account(store)
    device = device_for(account, reference_id="before")
    await store.insert_device(device, {}, TEST_ORIGIN)
    updated = await store.update_device(
        account.id,
        True,
        device.id,
        DeviceChange(reference_id="after", allow_renew=False),
        NOW + 100,
        TEST_ORIGIN,
        Action.DEVICE_UPDATE,
    )
    expected = msgspec.structs.replace(
        device, reference_id="after", allow_renew=False, version=2, updated_at=NOW + 100
    )
    assert updated == expected
    assert await store.get_device(account.id, True, device.id) == expected


async def test_update_fields_status(store: DeviceStore) -> None:
    account = await stored_account(store)
    device = device_for(account)
    await store.insert_device(device, {}, TEST_ORIGIN)
    disabled = await store.update_device(
        account.id,
        True,
        device.id,
        DeviceChange(status=DeviceStatus.DISABLED),
        NOW + 1,
        TEST_ORIGIN,
        Action.DEVICE_DISABLE,
    )
    assert disabled is not None and disabled.status is DeviceStatus.DISABLED
    assert await store.get_device(account.id, True, device.id) == disabled  # still visible

    deleted = await delete_at_store(store, account.id, True, device.id, NOW + 2)
    assert deleted is not None and deleted.status is DeviceStatus.DELETED
    assert deleted.version == 3
    assert await store.get_device(account.id, True, device.id) is None
    kept = await store.get_device(account.id, True, device.id, include_deleted=True)
    assert kept == deleted
    # a deleted device takes no more writes
    assert (
        await store.update_device(
            account.id,
            True,
            device.id,
            DeviceChange(reference_id="x"),
            NOW + 3,
            TEST_ORIGIN,
            Action.DEVICE_UPDATE,
        )
        is None
    )


async def test_update_fields_of_unknown_or_foreign_device_is_none(store: DeviceStore) -> None:
    account = await stored_account(store)
    other = await stored_account(store, "Other")
    device = device_for(account, reference_id="mine")
    await store.insert_device(device, {}, TEST_ORIGIN)
    change = DeviceChange(reference_id="x")
    for account_id, live_mode, device_id in [
        (account.id, True, new_id()),
        (other.id, True, device.id),
        (account.id, False, device.id),
    ]:
        assert (
            await store.update_device(
                account_id, live_mode, device_id, change, NOW, TEST_ORIGIN, Action.DEVICE_UPDATE
            )
            is None
        )
    assert await store.get_device(account.id, True, device.id) == device


@pytest.mark.parametrize(
    "column",
    [
        "version",
        "id",
        "account_id",
        "live_mode",
        "created_at",
        "updated_at",
        "reference_id = 'x', version",
        "nonexistent",
    ],
)
async def test_update_fields_refuses_other_columns(store: DeviceStore, column: str) -> None:
    account = await stored_account(store)
    device = device_for(account, reference_id="safe")
    await store.insert_device(device, {}, TEST_ORIGIN)
    # A DeviceChange has a field for each updatable column and no other: any other column
    # is refused when the change is made, before anything reaches the store.
    with pytest.raises(TypeError, match="Unexpected keyword argument"):
        change = DeviceChange(**{"reference_id": "changed", column: 99})  # type: ignore[arg-type]
        await store.update_device(
            account.id, True, device.id, change, NOW + 1, TEST_ORIGIN, Action.DEVICE_UPDATE
        )
    assert await store.get_device(account.id, True, device.id) == device


async def test_duplicate_reference_on_insert(store: DeviceStore) -> None:
    account = await stored_account(store)
    first = device_for(account, reference_id="dup")
    await store.insert_device(first, {}, TEST_ORIGIN)
    second = device_for(account, reference_id="dup")
    with pytest.raises(DuplicateValue) as caught:
        await store.insert_device(second, {}, TEST_ORIGIN)
    assert caught.value.field == "reference_id"
    assert await store.get_device(account.id, True, second.id) is None
    # the same reference in the other mode is a different namespace
    await store.insert_device(
        device_for(account, live_mode=False, reference_id="dup"), {}, TEST_ORIGIN
    )


async def test_duplicate_reference_on_update(store: DeviceStore) -> None:
    account = await stored_account(store)
    await store.insert_device(device_for(account, reference_id="taken"), {}, TEST_ORIGIN)
    device = device_for(account, reference_id="free")
    await store.insert_device(device, {}, TEST_ORIGIN)
    with pytest.raises(DuplicateValue) as caught:
        await store.update_device(
            account.id,
            True,
            device.id,
            DeviceChange(reference_id="taken"),
            NOW + 1,
            TEST_ORIGIN,
            Action.DEVICE_UPDATE,
        )
    assert caught.value.field == "reference_id"
    assert await store.get_device(account.id, True, device.id) == device


async def test_duplicate_device_identifier(store: DeviceStore) -> None:
    account = await stored_account(store)
    first = msgspec.structs.replace(device_for(account), device_identifier="SN-1")
    await store.insert_device(first, {}, TEST_ORIGIN)
    second = msgspec.structs.replace(device_for(account), device_identifier="SN-1")
    with pytest.raises(DuplicateValue) as caught:
        await store.insert_device(second, {}, TEST_ORIGIN)
    assert caught.value.field == "device_identifier"


async def test_deleted_device_frees_reference(store: DeviceStore) -> None:
    account = await stored_account(store)
    first = device_for(account, reference_id="again")
    await store.insert_device(first, {}, TEST_ORIGIN)
    await delete_at_store(store, account.id, True, first.id, NOW)
    second = device_for(account, reference_id="again")
    await store.insert_device(second, {}, TEST_ORIGIN)
    assert await store.list_devices(account.id, True, limit=10, reference_id="again") == [second]


# --- concurrency: the unique index decides -----------------------------------------------

RACERS = 20


def _race_sqlite(path: Path, devices: list[Device]) -> list[BaseException | None]:
    """Each device inserted by its own SqliteDeviceStore (own connection), in its own thread,
    all released at once."""
    barrier = threading.Barrier(len(devices))
    results: list[BaseException | None] = [None] * len(devices)

    def insert(index: int) -> None:
        own = SqliteDeviceStore(path)
        try:
            barrier.wait()
            asyncio.run(own.insert_device(devices[index], {}, TEST_ORIGIN))
        except BaseException as exc:
            results[index] = exc
        finally:
            asyncio.run(own.close())

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(len(devices))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


async def test_concurrent_inserts_of_one_reference_leave_exactly_one(
    store: DeviceStore,
) -> None:
    account = await stored_account(store)
    devices = [device_for(account, reference_id="race") for _ in range(RACERS)]
    if isinstance(store, SqliteDeviceStore):
        results = await asyncio.to_thread(_race_sqlite, store.path, devices)
    else:
        results = list(
            await asyncio.gather(
                *(store.insert_device(d, {}, TEST_ORIGIN) for d in devices), return_exceptions=True
            )
        )
    winners = [d for d, r in zip(devices, results, strict=True) if r is None]
    losers = [r for r in results if r is not None]
    assert len(winners) == 1, results
    assert all(isinstance(r, DuplicateValue) and r.field == "reference_id" for r in losers), losers
    listed = await store.list_devices(account.id, True, limit=100, reference_id="race")
    assert listed == winners


async def test_concurrent_updates_to_one_reference_leave_exactly_one(
    store: DeviceStore,
) -> None:
    account = await stored_account(store)
    devices = [device_for(account) for _ in range(10)]
    for device in devices:
        await store.insert_device(device, {}, TEST_ORIGIN)
    results = await asyncio.gather(
        *(
            store.update_device(
                account.id,
                True,
                d.id,
                DeviceChange(reference_id="claimed"),
                NOW + 1,
                TEST_ORIGIN,
                Action.DEVICE_UPDATE,
            )
            for d in devices
        ),
        return_exceptions=True,
    )
    assert sum(1 for r in results if isinstance(r, Device)) == 1, results
    assert all(isinstance(r, Device | DuplicateValue) for r in results), results
    listed = await store.list_devices(account.id, True, limit=100, reference_id="claimed")
    assert len(listed) == 1
