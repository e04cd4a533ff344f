"""The revocation mark (migration 0003) on both backends: every way a certificate's
revocation changes moves it, in the same transaction, and nothing else does; the CRL's pages
come in order and complete. (An upgraded database's mark: tests/storage/test_migrations.py.)"""

from __future__ import annotations

import msgspec
import pytest

from devreg.changelog.entries import Action
from devreg.core.records import Certificate, Device, DeviceStatus
from devreg.core.store import DeviceChange, DeviceStore
from tests.storage.conftest import NOW, StoredAccount, device_for, stored_account
from tests.storage.test_store_d import certificate_for
from tests.support.origins import TEST_ORIGIN


@pytest.fixture
async def account(store: DeviceStore) -> StoredAccount:
    return await stored_account(store)


async def device_with(
    store: DeviceStore, account: StoredAccount, count: int
) -> tuple[Device, list[Certificate]]:
    device = device_for(account)
    await store.insert_device(device, {}, TEST_ORIGIN)
    certs = [certificate_for(device, b"key") for _ in range(count)]
    for cert in certs:
        await store.insert_certificate(cert, TEST_ORIGIN, Action.CERTIFICATE_ISSUE)
    return device, certs


async def test_each_revocation_moves_the_mark_once_and_nothing_else_does(
    store: DeviceStore, account: StoredAccount
) -> None:
    device, (one, *_) = await device_with(store, account, 3)
    generation, _ = start = await store.revocation_mark()
    await store.insert_certificate(
        certificate_for(device, b"key"), TEST_ORIGIN, Action.CERTIFICATE_ISSUE
    )  # unrevoked: no move
    assert await store.revocation_mark() == start
    revoked = await store.revoke_certificate(
        account.id, True, one.id, "keyCompromise", NOW + 5, TEST_ORIGIN
    )
    assert revoked is not None
    assert await store.revocation_mark() == (generation + 1, max(start[1] or 0, NOW + 5))
    # Revoking again changes nothing, so the mark stays.
    assert (
        await store.revoke_certificate(account.id, True, one.id, "superseded", NOW + 9, TEST_ORIGIN)
        is None
    )
    assert (await store.revocation_mark())[0] == generation + 1
    # A device's certificates at once (deleting it): one move per certificate revoked.
    await store.revoke_all_certificates(
        account.id, device.id, "cessationOfOperation", NOW + 7, TEST_ORIGIN
    )
    assert (await store.revocation_mark())[0] == generation + 4  # two, three, the fourth
    assert {c.revoked_at for c in await store.list_certificates(account.id, device.id)} == {
        NOW + 5, NOW + 7,
    }  # fmt: skip
    # A certificate recorded already revoked moves it too.
    other = device_for(account)
    await store.insert_device(other, {}, TEST_ORIGIN)
    recorded = msgspec.structs.replace(
        certificate_for(other, b"other"), revoked_at=NOW + 11, revocation_reason="superseded"
    )
    await store.insert_certificate(recorded, TEST_ORIGIN, Action.CERTIFICATE_ISSUE)
    assert (await store.revocation_mark())[0] == generation + 5


async def test_the_device_update_that_revokes_moves_the_mark_with_it(
    store: DeviceStore, account: StoredAccount
) -> None:
    """update_device(revoke_reason=...) revokes in the device's own transaction."""
    device, certs = await device_with(store, account, 2)
    generation, _ = await store.revocation_mark()
    updated = await store.update_device(
        account.id, True, device.id, DeviceChange(status=DeviceStatus.DELETED), NOW + 1,
        TEST_ORIGIN, Action.DEVICE_DELETE, revoke_reason="cessationOfOperation",
    )  # fmt: skip
    assert updated is not None
    assert (await store.revocation_mark())[0] == generation + len(certs)


async def test_the_pages_list_every_revoked_unexpired_devreg_certificate_once_in_order(
    store: DeviceStore, account: StoredAccount
) -> None:
    device, certs = await device_with(store, account, 7)
    external = msgspec.structs.replace(certificate_for(device, b"key"), issuer="CN=Other")
    expired = msgspec.structs.replace(certificate_for(device, b"key"), not_after=NOW + 2)
    await store.insert_certificate(external, TEST_ORIGIN, Action.CERTIFICATE_ISSUE)
    await store.insert_certificate(expired, TEST_ORIGIN, Action.CERTIFICATE_ISSUE)
    when = {}
    for index, cert in enumerate([*certs, external, expired]):
        when[cert.id] = NOW + 100 + index // 2  # ties on revoked_at: the id orders them
        assert await store.revoke_certificate(
            account.id, True, cert.id, "superseded", when[cert.id], TEST_ORIGIN
        )
    await store.revoke_certificate(
        account.id, True, certs[0].id, "superseded", NOW, TEST_ORIGIN
    )  # no-op
    pages, after = [], None
    while True:
        page = await store.revoked_page(NOW + 3, after, 3)
        pages.append(page)
        if len(page) < 3:
            break
        after = (page[-1].revoked_at, page[-1].id)
    listed = [entry for page in pages for entry in page]
    mine = [entry for entry in listed if entry.id in {c.id for c in certs}]
    # (On PostgreSQL the session's database holds other tests' revocations too.)
    assert [e.id for e in mine] == sorted((c.id for c in certs), key=lambda i: (when[i], i))
    assert {e.id: e.revoked_at for e in mine} == {c.id: when[c.id] for c in certs}
    assert [(e.revoked_at, e.id) for e in listed] == sorted((e.revoked_at, e.id) for e in listed)
    assert len({e.id for e in listed}) == len(listed)
    assert {e.id for e in listed}.isdisjoint({external.id, expired.id})
    assert {(e.serial, e.reason) for e in mine} == {(c.serial, "superseded") for c in certs}
