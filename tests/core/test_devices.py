"""DeviceService rules, over the real store on SQLite and on PostgreSQL."""

from __future__ import annotations

import msgspec
import pytest

from devreg.core.access import DeviceFlags
from devreg.core.devices import (
    DEFAULT_PAGE,
    DUPLICATE_REFERENCE,
    MAX_PAGE,
    MAX_REFERENCE_ID,
    DevicePage,
    DeviceService,
)
from devreg.core.errors import Conflict, InvalidInput, NotFound
from devreg.core.ids import new_id
from devreg.core.records import Caller, Device, DeviceStatus
from devreg.core.store import DeviceStore
from tests.core.conftest import START, StepClock, Tenant


async def all_devices(service: DeviceService, caller: Caller) -> list[Device]:
    page = await service.list_page(caller, limit=MAX_PAGE)
    assert not page.has_more, "helper only for small accounts"
    return page.devices


def ids(devices: list[Device]) -> list[bytes]:
    return [d.id for d in devices]


# --- create -----------------------------------------------------------------------------


async def test_create_without_reference(service: DeviceService, tenant: Tenant) -> None:
    device = await service.create(tenant.live, None)
    assert device.account_id == tenant.account_id
    assert device.live_mode is True
    assert device.reference_id is None
    assert device.device_identifier is None
    assert device.status is DeviceStatus.ACTIVE
    assert device.division_id == tenant.profile.division_id
    assert device.profile_id == tenant.profile.id
    assert (device.allow_read, device.allow_write, device.allow_renew) == (True, True, True)
    assert device.last_seen is None
    assert device.created_at == device.updated_at == START
    assert device.version == 1
    assert len(device.id) == 16
    assert await service.get(tenant.live, device.id) == device


async def test_create_with_reference(service: DeviceService, tenant: Tenant) -> None:
    device = await service.create(tenant.test, "meter-42")
    assert device.reference_id == "meter-42"
    assert device.live_mode is False
    stored = await service.get(tenant.test, device.id)
    assert stored.reference_id == "meter-42"
    assert stored == device


async def test_empty_reference_means_none(service: DeviceService, tenant: Tenant) -> None:
    first = await service.create(tenant.live, "")
    second = await service.create(tenant.live, "")  # no uniqueness clash: neither has one
    assert first.reference_id is None
    assert (await service.get(tenant.live, second.id)).reference_id is None


async def test_reference_of_exactly_255_characters_is_kept(
    service: DeviceService, tenant: Tenant
) -> None:
    reference = "r" * MAX_REFERENCE_ID
    device = await service.create(tenant.live, reference)
    assert (await service.get(tenant.live, device.id)).reference_id == reference


async def test_unicode_reference_is_kept_exactly(service: DeviceService, tenant: Tenant) -> None:
    reference = "Zähler ⚡ 42 — ü"
    device = await service.create(tenant.live, reference)
    assert (await service.get(tenant.live, device.id)).reference_id == reference


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("r" * (MAX_REFERENCE_ID + 1), "at most 255 characters"),
        ("r" * 10_000, "at most 255 characters"),
        ("bad\x00ref", "control characters"),
        ("bad\nref", "control characters"),
        ("bad\tref", "control characters"),
        ("bad\x7fref", "control characters"),
    ],
)
async def test_bad_reference_is_refused_and_nothing_written(
    service: DeviceService, tenant: Tenant, reference: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        await service.create(tenant.live, reference)
    assert caught.value.field == "reference_id"
    assert await all_devices(service, tenant.live) == []


async def test_duplicate_reference_is_a_conflict(service: DeviceService, tenant: Tenant) -> None:
    first = await service.create(tenant.live, "dup")
    with pytest.raises(Conflict) as caught:
        await service.create(tenant.live, "dup")
    assert caught.value.code == "duplicate_reference"
    assert caught.value.message == DUPLICATE_REFERENCE == "Reference ID already exists"
    assert ids(await all_devices(service, tenant.live)) == [first.id]


async def test_reference_is_unique_per_account_and_mode_only(
    service: DeviceService, tenant: Tenant, other_tenant: Tenant
) -> None:
    live = await service.create(tenant.live, "shared")
    test = await service.create(tenant.test, "shared")
    other = await service.create(other_tenant.live, "shared")
    assert len({live.id, test.id, other.id}) == 3
    for caller, device in ((tenant.live, live), (tenant.test, test), (other_tenant.live, other)):
        page = await service.list_page(caller, reference_id="shared")
        assert ids(page.devices) == [device.id]


async def test_deleted_device_frees_its_reference(service: DeviceService, tenant: Tenant) -> None:
    old = await service.create(tenant.live, "reused")
    await service.delete(tenant.live, old.id)
    new = await service.create(tenant.live, "reused")
    assert new.id != old.id
    assert ids((await service.list_page(tenant.live, reference_id="reused")).devices) == [new.id]
    # ...and a second delete/re-create cycle works as well
    await service.delete(tenant.live, new.id)
    again = await service.create(tenant.live, "placeholder")
    updated = await service.update(tenant.live, again.id, "reused")
    assert updated.reference_id == "reused"


# --- scope: mode and account ---------------------------------------------------------------


async def test_test_mode_cannot_see_live_devices_and_back(
    service: DeviceService, tenant: Tenant
) -> None:
    live = await service.create(tenant.live, "live-ref")
    test = await service.create(tenant.test, None)
    with pytest.raises(NotFound):
        await service.get(tenant.test, live.id)
    with pytest.raises(NotFound):
        await service.get(tenant.live, test.id)
    assert ids(await all_devices(service, tenant.live)) == [live.id]
    assert ids(await all_devices(service, tenant.test)) == [test.id]
    assert (await service.list_page(tenant.test, reference_id="live-ref")).devices == []
    with pytest.raises(NotFound):
        await service.update(tenant.test, live.id, "stolen")
    with pytest.raises(NotFound):
        await service.delete(tenant.test, live.id)
    after = await service.get(tenant.live, live.id)
    assert after == live


async def test_other_account_gets_not_found(
    service: DeviceService, tenant: Tenant, other_tenant: Tenant
) -> None:
    device = await service.create(tenant.live, "mine")
    with pytest.raises(NotFound, match="No such device"):
        await service.get(other_tenant.live, device.id)
    with pytest.raises(NotFound):
        await service.update(other_tenant.live, device.id, "theirs")
    with pytest.raises(NotFound):
        await service.delete(other_tenant.live, device.id)
    assert await all_devices(service, other_tenant.live) == []
    assert await service.get(tenant.live, device.id) == device


async def test_unknown_id_is_not_found(service: DeviceService, tenant: Tenant) -> None:
    await service.create(tenant.live, None)
    with pytest.raises(NotFound):
        await service.get(tenant.live, new_id())
    with pytest.raises(NotFound):
        await service.update(tenant.live, new_id(), "x")
    with pytest.raises(NotFound):
        await service.delete(tenant.live, new_id())


# --- listing --------------------------------------------------------------------------------


async def test_list_is_newest_first(service: DeviceService, tenant: Tenant) -> None:
    created = [await service.create(tenant.live, f"ref-{n}") for n in range(5)]
    page = await service.list_page(tenant.live)
    assert ids(page.devices) == ids(created)[::-1]
    assert page.has_more is False


async def test_empty_list(service: DeviceService, tenant: Tenant) -> None:
    assert await service.list_page(tenant.live) == DevicePage(devices=[], has_more=False)


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE + 1, 10_000])
async def test_limit_out_of_bounds_is_refused(
    service: DeviceService, tenant: Tenant, limit: int
) -> None:
    with pytest.raises(InvalidInput, match="limit must be between 1 and 100") as caught:
        await service.list_page(tenant.live, limit=limit)
    assert caught.value.field == "limit"


async def test_limit_bounds_and_default(service: DeviceService, tenant: Tenant) -> None:
    created = [await service.create(tenant.live, None) for _ in range(DEFAULT_PAGE + 1)]
    newest_first = ids(created)[::-1]

    default = await service.list_page(tenant.live)
    assert ids(default.devices) == newest_first[:DEFAULT_PAGE]
    assert default.has_more is True

    one = await service.list_page(tenant.live, limit=1)
    assert ids(one.devices) == newest_first[:1]
    assert one.has_more is True

    hundred = await service.list_page(tenant.live, limit=MAX_PAGE)
    assert ids(hundred.devices) == newest_first
    assert hundred.has_more is False

    exact = await service.list_page(tenant.live, limit=DEFAULT_PAGE + 1)
    assert ids(exact.devices) == newest_first
    assert exact.has_more is False


async def make_many(store: DeviceStore, caller: Caller, count: int) -> list[bytes]:
    """`count` devices, three at a time sharing one created_at (ties are broken by id);
    returns their ids in the order a listing must show them: newest first."""
    clock = StepClock(step=0)
    service = DeviceService(store, clock)
    devices = []
    for n in range(count):
        clock.value = START + (n // 3) * 1000
        devices.append(await service.create(caller, None))
    devices.sort(key=lambda d: (d.created_at, d.id), reverse=True)
    return ids(devices)


async def walk_older(service: DeviceService, caller: Caller, limit: int) -> list[list[bytes]]:
    pages: list[list[bytes]] = []
    cursor: bytes | None = None
    while True:
        page = await service.list_page(caller, limit=limit, starting_after=cursor)
        pages.append(ids(page.devices))
        assert len(page.devices) <= limit
        if not page.has_more:
            return pages
        assert len(page.devices) == limit, "has_more with a short page"
        cursor = page.devices[-1].id
        assert len(pages) < 100, "walk does not end"


async def walk_newer(
    service: DeviceService, caller: Caller, limit: int, start: bytes
) -> list[list[bytes]]:
    pages: list[list[bytes]] = []
    cursor = start
    while True:
        page = await service.list_page(caller, limit=limit, ending_before=cursor)
        pages.append(ids(page.devices))
        assert len(page.devices) <= limit
        if not page.has_more:
            return pages
        assert len(page.devices) == limit, "has_more with a short page"
        cursor = page.devices[0].id
        assert len(pages) < 100, "walk does not end"


@pytest.mark.parametrize(("count", "limit"), [(23, 5), (20, 5), (7, 1), (9, 100)])
async def test_full_walk_towards_older(
    store: DeviceStore, service: DeviceService, tenant: Tenant, count: int, limit: int
) -> None:
    expected = await make_many(store, tenant.live, count)
    pages = await walk_older(service, tenant.live, limit)
    assert [d for page in pages for d in page] == expected
    # has_more was true on every page but the last, and only as many pages as needed
    assert len(pages) == max(1, -(-count // limit))


@pytest.mark.parametrize(("count", "limit"), [(23, 5), (21, 5), (7, 1), (9, 100)])
async def test_full_walk_towards_newer(
    store: DeviceStore, service: DeviceService, tenant: Tenant, count: int, limit: int
) -> None:
    expected = await make_many(store, tenant.live, count)
    oldest = expected[-1]
    pages = await walk_newer(service, tenant.live, limit, oldest)
    # every page is itself newest first; pages come oldest page first
    for page in pages:
        positions = [expected.index(d) for d in page]
        assert positions == sorted(positions)
    walked = [d for page in reversed(pages) for d in page]
    assert walked == expected[:-1]
    assert len(pages) == max(1, -(-(count - 1) // limit))


async def test_paging_back_returns_the_previous_page(
    store: DeviceStore, service: DeviceService, tenant: Tenant
) -> None:
    expected = await make_many(store, tenant.live, 12)
    first = await service.list_page(tenant.live, limit=4)
    second = await service.list_page(tenant.live, limit=4, starting_after=first.devices[-1].id)
    assert ids(second.devices) == expected[4:8]
    back = await service.list_page(tenant.live, limit=4, ending_before=second.devices[0].id)
    assert ids(back.devices) == ids(first.devices) == expected[:4]
    assert back.has_more is False  # nothing newer than the first page


async def test_cursors_at_the_ends(
    store: DeviceStore, service: DeviceService, tenant: Tenant
) -> None:
    expected = await make_many(store, tenant.live, 4)
    newest, oldest = expected[0], expected[-1]
    assert await service.list_page(tenant.live, ending_before=newest) == DevicePage([], False)
    assert await service.list_page(tenant.live, starting_after=oldest) == DevicePage([], False)
    after_newest = await service.list_page(tenant.live, starting_after=newest)
    assert ids(after_newest.devices) == expected[1:]
    assert after_newest.has_more is False


async def test_cursor_may_name_a_deleted_device(
    store: DeviceStore, service: DeviceService, tenant: Tenant
) -> None:
    expected = await make_many(store, tenant.live, 6)
    await service.delete(tenant.live, expected[2])
    older = await service.list_page(tenant.live, starting_after=expected[2])
    assert ids(older.devices) == expected[3:]
    newer = await service.list_page(tenant.live, ending_before=expected[2])
    assert ids(newer.devices) == expected[:2]


async def test_both_cursors_are_refused(service: DeviceService, tenant: Tenant) -> None:
    a = await service.create(tenant.live, None)
    b = await service.create(tenant.live, None)
    with pytest.raises(InvalidInput, match="cannot be used together"):
        await service.list_page(tenant.live, starting_after=a.id, ending_before=b.id)


async def test_unknown_cursor_is_refused(
    service: DeviceService, tenant: Tenant, other_tenant: Tenant
) -> None:
    await service.create(tenant.live, None)
    theirs = await service.create(other_tenant.live, None)
    other_mode = await service.create(tenant.test, None)
    for cursor in (new_id(), theirs.id, other_mode.id):
        with pytest.raises(InvalidInput, match="starting_after") as caught:
            await service.list_page(tenant.live, starting_after=cursor)
        assert caught.value.field == "starting_after"
        with pytest.raises(InvalidInput, match="ending_before") as caught:
            await service.list_page(tenant.live, ending_before=cursor)
        assert caught.value.field == "ending_before"


async def test_reference_filter(service: DeviceService, tenant: Tenant) -> None:
    await service.create(tenant.live, "alpha")
    beta = await service.create(tenant.live, "beta")
    await service.create(tenant.live, None)
    page = await service.list_page(tenant.live, reference_id="beta")
    assert ids(page.devices) == [beta.id]
    assert page.has_more is False
    assert (await service.list_page(tenant.live, reference_id="gamma")).devices == []
    assert (await service.list_page(tenant.live, reference_id="BETA")).devices == []
    await service.delete(tenant.live, beta.id)
    assert (await service.list_page(tenant.live, reference_id="beta")).devices == []


# --- update -----------------------------------------------------------------------------


async def test_partial_update_changes_only_what_is_named(
    service: DeviceService, tenant: Tenant, clock: StepClock
) -> None:
    device = await service.create(tenant.live, "before")
    updated = await service.update(tenant.live, device.id, "after")
    assert updated.reference_id == "after"
    assert updated.version == device.version + 1
    assert updated.updated_at > device.updated_at
    assert updated.created_at == device.created_at
    unchanged = (
        "id",
        "account_id",
        "live_mode",
        "device_identifier",
        "division_id",
        "profile_id",
        "status",
        "allow_read",
        "allow_write",
        "allow_renew",
        "last_seen",
    )
    for name in unchanged:
        assert getattr(updated, name) == getattr(device, name), name
    assert await service.get(tenant.live, device.id) == updated

    # The flags are not dialect F's to change: dialect D's replace sets them (no values).
    flags = (
        await service.replace(tenant.live, device.id, None, [], DeviceFlags(allow_write=False))
    ).device
    assert flags.allow_write is False
    assert flags.reference_id == "after"
    assert flags.allow_read is True and flags.allow_renew is True
    assert flags.version == device.version + 2
    assert flags.updated_at > updated.updated_at


async def test_update_can_clear_the_reference(service: DeviceService, tenant: Tenant) -> None:
    device = await service.create(tenant.live, "to-clear")
    for value in ("", None):
        cleared = await service.update(tenant.live, device.id, value)
        assert cleared.reference_id is None
    # and the freed reference can be taken by another device
    other = await service.create(tenant.live, "to-clear")
    assert other.reference_id == "to-clear"


async def test_update_to_its_own_reference_is_not_a_conflict(
    service: DeviceService, tenant: Tenant
) -> None:
    device = await service.create(tenant.live, "same")
    updated = await service.update(tenant.live, device.id, "same")
    assert updated.reference_id == "same"
    assert updated.version == 2


async def test_update_to_a_taken_reference_is_a_conflict_and_changes_nothing(
    service: DeviceService, tenant: Tenant
) -> None:
    await service.create(tenant.live, "taken")
    device = await service.create(tenant.live, "mine")
    with pytest.raises(Conflict) as caught:
        await service.update(tenant.live, device.id, "taken")
    assert caught.value.code == "duplicate_reference"
    assert await service.get(tenant.live, device.id) == device


@pytest.mark.parametrize("reference", ["x" * 256, "a\x00b", "line\nbreak"])
async def test_update_with_bad_reference_changes_nothing(
    service: DeviceService, tenant: Tenant, reference: str
) -> None:
    device = await service.create(tenant.live, "fine")
    with pytest.raises(InvalidInput) as caught:
        await service.update(tenant.live, device.id, reference)
    assert caught.value.field == "reference_id"
    assert await service.get(tenant.live, device.id) == device


async def test_empty_change_set_changes_nothing(service: DeviceService, tenant: Tenant) -> None:
    device = await service.create(tenant.live, "stay")
    same = await service.update(tenant.live, device.id, msgspec.UNSET)
    assert same == device
    assert await service.get(tenant.live, device.id) == device


async def test_empty_change_set_on_unknown_device_is_not_found(
    service: DeviceService, tenant: Tenant
) -> None:
    with pytest.raises(NotFound):
        await service.update(tenant.live, new_id(), msgspec.UNSET)


# --- delete -----------------------------------------------------------------------------


async def test_delete_then_get_is_not_found(service: DeviceService, tenant: Tenant) -> None:
    keep = await service.create(tenant.live, "keep")
    gone = await service.create(tenant.live, "gone")
    await service.delete(tenant.live, gone.id)
    with pytest.raises(NotFound):
        await service.get(tenant.live, gone.id)
    with pytest.raises(NotFound):
        await service.update(tenant.live, gone.id, "revived")
    assert ids(await all_devices(service, tenant.live)) == [keep.id]
    assert await service.get(tenant.live, keep.id) == keep


async def test_delete_twice_is_not_found(service: DeviceService, tenant: Tenant) -> None:
    device = await service.create(tenant.live, None)
    await service.delete(tenant.live, device.id)
    with pytest.raises(NotFound, match="No such device"):
        await service.delete(tenant.live, device.id)
