"""Delete as an archive and restore (dialect D's `PUT /device/{id}/restore`), over the real
store on SQLite and on PostgreSQL: the counter, the quota, the freed and re-taken
reference and identifier, and the certificates that stay revoked."""

from __future__ import annotations

import os
from typing import Any

import pytest

from devreg.auth.access_gate import AccessGate
from devreg.changelog.entries import Action
from devreg.core.clock import now_us
from devreg.core.devices import DeviceService
from devreg.core.errors import InvalidInput, NotFound, QuotaExceeded, Unauthenticated
from devreg.core.ids import new_id
from devreg.core.quotas import Quotas
from devreg.core.records import Certificate, DeviceStatus
from devreg.core.store import DeviceStore
from devreg.est.enrollment import authenticate_secret, create_secret
from tests.core.conftest import StepClock, Tenant
from tests.support.origins import TEST_ORIGIN

CREDENTIAL = "est-secret:test"  # how the EST route names a secret credential


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
    caller = await authenticate_secret(
        store, AccessGate(store), made.id, secret.secret, CREDENTIAL, "req_test"
    )
    assert caller.device is not None and caller.device.id == made.id
    await service.delete(tenant.live, made.id)
    await service.restore(tenant.live, made.id)
    with pytest.raises(Unauthenticated):
        await authenticate_secret(
            store, AccessGate(store), made.id, secret.secret, CREDENTIAL, "req_test"
        )


class DeletedBeforeTheWrite:
    """The store, with the device deleted just before an issuance writes: an issuance that
    read the device before the delete committed, and wrote after it."""

    def __init__(
        self, store: DeviceStore, service: DeviceService, tenant: Tenant, device_id: bytes
    ):
        self.store, self.service, self.tenant, self.device_id = store, service, tenant, device_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def insert_enrollment_secret(self, *args: Any, **kwargs: Any) -> int:
        await self.service.delete(self.tenant.live, self.device_id)
        return await self.store.insert_enrollment_secret(*args, **kwargs)


async def test_what_was_issued_while_the_delete_committed_is_revoked_by_the_restore(
    service: DeviceService, store: DeviceStore, tenant: Tenant
) -> None:
    made = await service.create_in_profile(tenant.live, "racing", None, None, [])
    racing = DeletedBeforeTheWrite(store, service, tenant, made.id)
    secret = await create_secret(racing, tenant.live, made.id)  # type: ignore[arg-type]
    now = now_us()
    late = Certificate(
        id=new_id(), account_id=tenant.account_id, device_id=made.id, serial="0A",
        fingerprint=os.urandom(32), public_key_hash=os.urandom(32), pem="(not read here)",
        not_before=now, not_after=now + 86_400_000_000, issuer="devreg", created_at=now,
    )  # fmt: skip
    await store.insert_certificate(
        late, TEST_ORIGIN, Action.CERTIFICATE_ISSUE
    )  # written after the delete's revocation ran
    (unrevoked,) = await store.list_certificates(tenant.account_id, made.id)
    assert unrevoked.revoked_at is None  # so the restore must be the one to revoke it
    await service.restore(tenant.live, made.id)
    (after,) = await store.list_certificates(tenant.account_id, made.id)
    assert after.revoked_at is not None and after.revocation_reason == "cessationOfOperation"
    with pytest.raises(Unauthenticated):
        await authenticate_secret(
            store, AccessGate(store), made.id, secret.secret, CREDENTIAL, "req_test"
        )
