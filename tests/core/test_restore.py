"""Delete as an archive and restore (dialect D's `PUT /device/{id}/restore`), over the real
store on SQLite and on PostgreSQL: the counter, the quota, the freed and re-taken
reference and identifier, and the certificates that stay revoked."""

from __future__ import annotations

import pytest

from devreg.core.devices import DeviceService
from devreg.core.errors import InvalidInput, NotFound, QuotaExceeded, Unauthenticated
from devreg.core.ids import new_id
from devreg.core.quotas import Quotas
from devreg.core.records import DeviceStatus
from devreg.core.store import DeviceStore
from devreg.est.enrollment import authenticate_secret, create_secret
from tests.core.conftest import StepClock, Tenant


async def test_restore_brings_back_the_archived_device_and_counts_it_again(
    service: DeviceService, store: DeviceStore, tenant: Tenant
) -> None:
    made = await service.create(tenant.live, "ref-restore")
    deleted = await service.delete(tenant.live, made.id)
    assert (deleted.id, deleted.status, deleted.reference_id) == (
        made.id, DeviceStatus.DELETED, "ref-restore",
    )  # fmt: skip
    assert deleted.updated_at > made.updated_at
    assert await store.count_devices(tenant.account_id, True) == 0
    with pytest.raises(NotFound):
        await service.get(tenant.live, made.id)
    restored = await service.restore(tenant.live, made.id)
    assert (restored.id, restored.status) == (made.id, DeviceStatus.ACTIVE)
    assert restored.reference_id == "ref-restore"
    assert restored.updated_at > deleted.updated_at
    assert await service.get(tenant.live, made.id) == restored
    assert await store.count_devices(tenant.account_id, True) == 1


async def test_restore_names_a_taken_reference_and_changes_nothing(
    service: DeviceService, store: DeviceStore, tenant: Tenant
) -> None:
    old = await service.create(tenant.live, "taken-again")
    await service.delete(tenant.live, old.id)
    new = await service.create(tenant.live, "taken-again")  # freed by the delete
    with pytest.raises(InvalidInput) as refused:
        await service.restore(tenant.live, old.id)
    assert "reference_id" in refused.value.message and "taken-again" in refused.value.message
    archived = await store.get_device(tenant.account_id, True, old.id, include_deleted=True)
    assert archived is not None and archived.status is DeviceStatus.DELETED
    assert await store.count_devices(tenant.account_id, True) == 1
    await service.delete(tenant.live, new.id)
    assert (await service.restore(tenant.live, old.id)).status is DeviceStatus.ACTIVE


async def test_restore_names_a_taken_identifier(
    service: DeviceService, store: DeviceStore, tenant: Tenant
) -> None:
    old = await service.create_in_profile(tenant.live, "gw-7", None, None, [])
    await service.delete(tenant.live, old.id)
    await service.create_in_profile(tenant.live, "gw-7", None, None, [])
    with pytest.raises(InvalidInput) as refused:
        await service.restore(tenant.live, old.id)
    assert "device_identifier" in refused.value.message and "gw-7" in refused.value.message
    assert await store.count_devices(tenant.account_id, True) == 1


async def test_restore_of_a_device_that_is_not_deleted_is_invalid_input(
    service: DeviceService, tenant: Tenant
) -> None:
    made = await service.create(tenant.live, None)
    await service.set_status(tenant.live, made.id, DeviceStatus.DISABLED)
    with pytest.raises(InvalidInput) as refused:
        await service.restore(tenant.live, made.id)
    assert "not deleted" in refused.value.message
    assert (await service.get(tenant.live, made.id)).status is DeviceStatus.DISABLED


async def test_restore_is_scoped_by_account_and_mode(
    service: DeviceService, tenant: Tenant, other_tenant: Tenant
) -> None:
    made = await service.create(tenant.live, None)
    await service.delete(tenant.live, made.id)
    for caller in (tenant.test, other_tenant.live):
        with pytest.raises(NotFound):
            await service.restore(caller, made.id)
    with pytest.raises(NotFound):
        await service.restore(tenant.live, new_id())


async def test_restore_is_refused_when_the_quota_is_full(
    store: DeviceStore, clock: StepClock, tenant: Tenant
) -> None:
    service = DeviceService(store, clock, Quotas(devices=1))
    old = await service.create(tenant.live, None)
    await service.delete(tenant.live, old.id)  # a deleted device does not count ...
    await service.create(tenant.live, None)
    with pytest.raises(QuotaExceeded):  # ... until it is restored
        await service.restore(tenant.live, old.id)
    archived = await store.get_device(tenant.account_id, True, old.id, include_deleted=True)
    assert archived is not None and archived.status is DeviceStatus.DELETED


async def test_an_enrollment_secret_made_before_the_delete_stays_revoked_after_restore(
    service: DeviceService, store: DeviceStore, tenant: Tenant
) -> None:
    made = await service.create_in_profile(tenant.live, "est-gw", None, None, [])
    secret = await create_secret(store, tenant.live, made.id)
    assert (await authenticate_secret(store, made.id, secret.secret)).id == made.id
    await service.delete(tenant.live, made.id)
    await service.restore(tenant.live, made.id)
    with pytest.raises(Unauthenticated):
        await authenticate_secret(store, made.id, secret.secret)
