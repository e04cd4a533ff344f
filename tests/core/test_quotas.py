"""Per-account quotas (core/quotas.py), on both stores: devices per mode (dialect F's create,
dialect D's create, bulk import), device profiles and divisions; a refused create writes
nothing, and a deleted device frees its place."""

from __future__ import annotations

import json

import pytest

from devreg.core.bulk_import import import_devices
from devreg.core.devices import DeviceService
from devreg.core.errors import QuotaExceeded
from devreg.core.profiles import ProfileFlags
from devreg.core.quotas import DEVICES_SETTING, DIVISIONS_SETTING, PROFILES_SETTING, Quotas
from devreg.core.store import DeviceFilter, DeviceStore
from tests.core.conftest import StepClock, Tenant
from tests.support.origins import TEST_ORIGIN

QUOTAS = Quotas(devices=3, profiles=2, divisions=2)


@pytest.fixture
def limited(store: DeviceStore, clock: StepClock) -> DeviceService:
    return DeviceService(store, clock, QUOTAS)


async def held(store: DeviceStore, tenant: Tenant, live_mode: bool = True) -> int:
    """Counted the slow way, not from the counter the quota reads."""
    caller = tenant.live if live_mode else tenant.test
    where = DeviceFilter(created_from=0)  # any filter: a bounded COUNT(*) over the rows
    return await store.count_matching(tenant.account_id, caller.live_mode, where, at_most=10**6)


async def test_devices_per_account_and_mode(
    limited: DeviceService, store: DeviceStore, tenant: Tenant
) -> None:
    await limited.create(tenant.live, "f-1")  # dialect F
    await limited.create_in_profile(tenant.live, "d-1", None, None, [])  # dialect D
    third = await limited.create(tenant.live, None)
    for attempt in (
        limited.create(tenant.live, "f-2"),
        limited.create_in_profile(tenant.live, "d-2", None, None, []),
    ):
        with pytest.raises(QuotaExceeded) as refused:
            await attempt
        assert refused.value.setting == DEVICES_SETTING
        assert "at most 3 devices" in refused.value.message
    assert await held(store, tenant) == 3
    # Test mode has its own quota; a deleted device frees its place.
    await limited.create(tenant.test, "t-1")
    await limited.delete(tenant.live, third.id)
    await limited.create_in_profile(tenant.live, "d-2", None, None, [])
    assert await held(store, tenant) == 3
    assert await store.count_devices(tenant.account_id, True) == 3
    assert await store.count_devices(tenant.account_id, False) == 1


async def test_bulk_import_counts_against_the_quota(store: DeviceStore, tenant: Tenant) -> None:
    service = DeviceService(store, quotas=QUOTAS)
    await service.create(tenant.live, "already")
    lines = [json.dumps({"reference_id": f"r{n}"}).encode() + b"\n" for n in range(3)]
    with pytest.raises(QuotaExceeded):
        await import_devices(store, tenant.account_id, lines, quotas=QUOTAS, origin=TEST_ORIGIN)
    assert await held(store, tenant) == 1, "a refused import wrote something"
    assert await store.count_devices(tenant.account_id, True) == 1
    # Chunks add up: two chunks of one line each, the second over the quota.
    with pytest.raises(QuotaExceeded):
        await import_devices(
            store, tenant.account_id, lines, quotas=QUOTAS, chunk=1, origin=TEST_ORIGIN
        )
    assert await held(store, tenant) == 1
    assert (
        await import_devices(store, tenant.account_id, lines[:2], quotas=QUOTAS, origin=TEST_ORIGIN)
        == 2
    )
    assert await store.count_devices(tenant.account_id, True) == 3


async def test_profiles_and_divisions(limited: DeviceService, tenant: Tenant) -> None:
    profiles = limited.profiles
    # Every account starts with a default division and a default profile: one left of each.
    division = await profiles.create_division(tenant.live, "North")
    with pytest.raises(QuotaExceeded) as refused:
        await profiles.create_division(tenant.live, "South")
    assert refused.value.setting == DIVISIONS_SETTING
    await profiles.create_profile(tenant.live, "Meter", division.id, [], ProfileFlags())
    with pytest.raises(QuotaExceeded) as refused:
        await profiles.create_profile(tenant.live, "Pump", None, [], ProfileFlags())
    assert refused.value.setting == PROFILES_SETTING
    assert [d.name for d in await profiles.divisions(tenant.live)] == ["Default", "North"]
    assert [p.profile.name for p in await profiles.profiles(tenant.live)] == ["Default", "Meter"]
