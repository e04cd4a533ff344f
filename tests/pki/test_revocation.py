"""pki/revocation.py over the real store (both backends): RFC 5280 reason names, revoke() and
its idempotence and scope, and the CrlPublisher's rebuilds under a controllable clock."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from devreg.core.clock import now_us
from devreg.core.devices import DeviceService
from devreg.core.errors import InvalidInput, NotFound
from devreg.core.ids import new_id
from devreg.core.records import Certificate, Device, RevokedEntry
from devreg.core.store import DeviceStore, StoreUnavailable
from devreg.pki.admission import IssuanceLimits
from devreg.pki.ca import BACKDATE, CertificateAuthority, load_or_create_ca
from devreg.pki.issuing import CertificateService
from devreg.pki.revocation import (
    CRL_LIFETIME,
    CRL_REFRESH_BEFORE,
    MARK_MAX_AGE_SECONDS,
    REASONS,
    CrlPublisher,
    reason_name,
    revoke,
)
from tests.core.conftest import Tenant, make_tenant
from tests.tls.helpers import issue, other_ca

HOUR = 3600 * 1_000_000
LIFETIME_US = int(CRL_LIFETIME.total_seconds() * 1_000_000)
REFRESH_US = int(CRL_REFRESH_BEFORE.total_seconds() * 1_000_000)
MARK_MAX_AGE_US = int(MARK_MAX_AGE_SECONDS * 1_000_000)


# --- reason names ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(REASONS))
def test_each_rfc_5280_name_is_accepted_in_any_case(name: str) -> None:
    for given in (name, name.lower(), name.upper(), f"  {name}\n"):
        assert reason_name(given) == name


def test_the_names_are_rfc_5280s_without_remove_from_crl() -> None:
    assert set(REASONS) == {
        "unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
        "cessationOfOperation", "certificateHold", "privilegeWithdrawn", "aACompromise",
    }  # fmt: skip
    assert {flag for flag in x509.ReasonFlags} - set(REASONS.values()) == {
        x509.ReasonFlags.remove_from_crl
    }


@pytest.mark.parametrize(
    "given", ["", " ", "bogus", "removeFromCRL", "key compromise", "keyCompromise\x00", "1"]
)
def test_anything_else_is_refused_listing_the_names(given: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        reason_name(given)
    assert raised.value.field == "reason"
    for name in REASONS:
        assert name in raised.value.message


# --- revoke() ----------------------------------------------------------------------------------


class Clock:
    """A clock the test sets: microseconds, starting now (certificates are issued with the
    real time, so the CRL's clock starts there too)."""

    def __init__(self) -> None:
        self.value = now_us()

    def __call__(self) -> int:
        return self.value


@dataclass
class World:
    store: DeviceStore
    ca: CertificateAuthority
    work: Path
    certificates: CertificateService
    devices: DeviceService
    tenant: Tenant
    clock: Clock
    publisher: CrlPublisher
    external: CertificateAuthority  # a configured client CA

    async def device(self, name: str = "gw") -> Device:
        return await self.devices.create_in_profile(self.tenant.live, name, None, None, [])

    async def certificate(self, device: Device) -> Certificate:
        issued = await self.certificates.issue_with_new_key(self.tenant.live, device.id)
        return issued.certificate


@pytest.fixture
async def world(store: DeviceStore, tmp_path: Path) -> World:
    ca = load_or_create_ca(tmp_path / "ca")
    external, _ = other_ca(tmp_path / "external")
    clock = Clock()
    return World(
        store=store,
        ca=ca,
        work=tmp_path,
        # One device holds a certificate per reason here: above the default cap, which
        # tests/security/test_issuance_abuse.py tests.
        certificates=CertificateService(
            store, ca, external_cas=[external.certificate], limits=IssuanceLimits(max_active=50)
        ),
        devices=DeviceService(store),
        tenant=await make_tenant(store, "Acme"),
        clock=clock,
        publisher=CrlPublisher(store, ca, clock),
        external=external,
    )


async def test_revoke_records_when_and_why_once(world: World) -> None:
    cert = await world.certificate(await world.device())
    at = world.clock.value
    revoked = await revoke(world.store, world.tenant.live, cert.id, "KEYCOMPROMISE", at)
    assert (revoked.revoked_at, revoked.revocation_reason) == (at, "keyCompromise")
    assert revoked.id == cert.id and revoked.fingerprint == cert.fingerprint
    # Again, later, with another reason: nothing changes, the first revocation is answered.
    again = await revoke(world.store, world.tenant.live, cert.id, "superseded", at + HOUR)
    assert again == revoked
    assert await world.store.find_certificate(cert.fingerprint) == revoked


async def test_revoke_only_the_callers_certificates(world: World) -> None:
    cert = await world.certificate(await world.device())
    other = await make_tenant(world.store, "Globex")
    at = world.clock.value
    for caller, cert_id in [
        (world.tenant.live, new_id()),  # no such certificate
        (other.live, cert.id),  # another account's
        (world.tenant.test, cert.id),  # a live device's, asked with the test mode
    ]:
        with pytest.raises(NotFound):
            await revoke(world.store, caller, cert_id, "keyCompromise", at)
    with pytest.raises(InvalidInput):
        await revoke(world.store, world.tenant.live, cert.id, "bogus", at)
    found = await world.store.find_certificate(cert.fingerprint)
    assert found is not None and found.revoked_at is None


async def test_a_test_mode_certificate_is_revoked_with_the_test_mode(world: World) -> None:
    device = await world.devices.create_in_profile(world.tenant.test, "t", None, None, [])
    cert = (await world.certificates.issue_with_new_key(world.tenant.test, device.id)).certificate
    with pytest.raises(NotFound):
        await revoke(world.store, world.tenant.live, cert.id, "superseded", world.clock.value)
    revoked = await revoke(world.store, world.tenant.test, cert.id, "superseded", 5)
    assert (revoked.revoked_at, revoked.revocation_reason) == (5, "superseded")


async def test_a_deleted_devices_certificates_stay_revoked_and_visible(world: World) -> None:
    device = await world.device()
    first, second = await world.certificate(device), await world.certificate(device)
    await world.devices.delete(world.tenant.live, device.id)
    for cert in (first, second):
        answered = await revoke(world.store, world.tenant.live, cert.id, "keyCompromise", 1)
        assert answered.revocation_reason == "cessationOfOperation"
        assert answered.revoked_at is not None and answered.revoked_at != 1


# --- the CRL -----------------------------------------------------------------------------------


def entries(crl: x509.CertificateRevocationList) -> dict[int, x509.RevokedCertificate]:
    return {entry.serial_number: entry for entry in crl}


def reason_of(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        reason: x509.ReasonFlags = entry.extensions.get_extension_for_class(
            x509.CRLReason
        ).value.reason
    except x509.ExtensionNotFound:
        return None
    return reason


def number(crl: x509.CertificateRevocationList) -> int:
    value: int = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    return value


def moment(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us // 1_000_000, tz=dt.UTC)


async def test_the_crl_is_signed_by_the_ca_and_lists_revocations_with_reasons(
    world: World,
) -> None:
    device = await world.device()
    certs = {reason: await world.certificate(device) for reason in REASONS}
    kept = await world.certificate(device)
    at = world.clock.value - HOUR
    for reason, cert in certs.items():
        await revoke(world.store, world.tenant.live, cert.id, reason, at)
    crl_record = await world.publisher.current()
    crl = x509.load_der_x509_crl(crl_record.der)
    assert x509.load_pem_x509_crl(crl_record.pem) == crl
    assert crl.issuer == world.ca.certificate.subject
    assert crl.is_signature_valid(world.ca.key.public_key())
    assert crl.last_update_utc == moment(world.clock.value) - BACKDATE
    assert crl.next_update_utc == moment(world.clock.value + LIFETIME_US)
    assert crl_record.next_update == world.clock.value + LIFETIME_US
    # The later of the latest revocation in the database and the start of this hour, in
    # microseconds: what every process builds from the same revocations in the same hour.
    # (On PostgreSQL the session's database holds other tests' revocations too.)
    _, latest = await world.store.revocation_mark()
    assert number(crl) == max(world.clock.value - world.clock.value % HOUR, latest or 0)
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki == x509.AuthorityKeyIdentifier.from_issuer_public_key(world.ca.key.public_key())
    listed = entries(crl)
    for reason, cert in certs.items():
        entry = listed[int(cert.serial, 16)]
        assert entry.revocation_date_utc == moment(at)
        # RFC 5280 5.3.1: the reason code unspecified SHOULD be absent.
        assert reason_of(entry) == (None if reason == "unspecified" else REASONS[reason])
    assert int(kept.serial, 16) not in listed


async def test_the_crl_is_kept_until_a_revocation_or_its_next_update_draws_near(
    world: World,
) -> None:
    cert = await world.certificate(await world.device())
    first = await world.publisher.current()
    assert await world.publisher.current() is first
    world.clock.value += HOUR  # time passes, nothing is revoked: the same CRL
    assert await world.publisher.current() is first
    # A revocation moves the mark; the mark read is trusted for MARK_MAX_AGE, then the CRL is
    # rebuilt, with a higher number.
    await revoke(world.store, world.tenant.live, cert.id, "keyCompromise", world.clock.value)
    world.clock.value += MARK_MAX_AGE_US - 1
    assert await world.publisher.current() is first
    world.clock.value += 1
    second = await world.publisher.current()
    assert second is not first and second.mark != first.mark
    crl = x509.load_der_x509_crl(second.der)
    assert int(cert.serial, 16) in entries(crl)
    assert number(crl) > number(x509.load_der_x509_crl(first.der))
    # Revoking it again changes nothing: the mark stays, so does the CRL.
    await revoke(world.store, world.tenant.live, cert.id, "superseded", world.clock.value + 5)
    world.clock.value += MARK_MAX_AGE_US
    assert await world.publisher.current() is second
    # Up to an hour before nextUpdate it is kept; from then on it is made again.
    world.clock.value = second.next_update - REFRESH_US - 1
    assert await world.publisher.current() is second
    world.clock.value = second.next_update - REFRESH_US
    third = await world.publisher.current()
    assert third is not second and third.mark == second.mark
    assert third.next_update == world.clock.value + LIFETIME_US
    renewed = x509.load_der_x509_crl(third.der)
    assert renewed.last_update_utc == moment(world.clock.value) - BACKDATE
    assert number(renewed) > number(crl)
    assert int(cert.serial, 16) in entries(renewed)


async def test_deleting_a_device_moves_the_mark_and_lists_its_certificates(world: World) -> None:
    device = await world.device()
    certs = [await world.certificate(device), await world.certificate(device)]
    before = await world.publisher.current()
    mark = await world.store.revocation_mark()
    await world.devices.delete(world.tenant.live, device.id)
    assert await world.store.revocation_mark() != mark
    world.clock.value += MARK_MAX_AGE_US
    after = await world.publisher.current()
    assert after is not before
    listed = entries(x509.load_der_x509_crl(after.der))
    for cert in certs:
        assert reason_of(listed[int(cert.serial, 16)]) == x509.ReasonFlags.cessation_of_operation


async def test_another_process_sees_the_revocation_through_the_store(world: World) -> None:
    """Two publishers on one database, as two worker processes: each rebuilds its own CRL
    when the other's revocation moves the mark."""
    cert = await world.certificate(await world.device())
    elsewhere = CrlPublisher(world.store, world.ca, world.clock)
    cached = await elsewhere.current()
    await revoke(world.store, world.tenant.live, cert.id, "keyCompromise", world.clock.value)
    world.clock.value += MARK_MAX_AGE_US
    rebuilt = await elsewhere.current()
    assert rebuilt is not cached
    assert int(cert.serial, 16) in entries(x509.load_der_x509_crl(rebuilt.der))


async def test_expired_or_external_certificates_are_not_listed(world: World) -> None:
    """The CRL is the CA's: a revoked certificate another CA issued is not in it (though
    its revocation moves the mark), and an expired one may leave it (RFC 5280 3.3)."""
    ours = await world.certificate(await world.device())
    credential = issue(world.external, world.work, "external")
    theirs = await world.certificates.register_external(
        world.tenant.live, (await world.device("external")).id, credential.pem
    )
    assert theirs.issuer == world.external.certificate.subject.rfc4514_string()
    await revoke(world.store, world.tenant.live, ours.id, "keyCompromise", world.clock.value)
    first = await world.publisher.current()
    assert int(ours.serial, 16) in entries(x509.load_der_x509_crl(first.der))
    await revoke(world.store, world.tenant.live, theirs.id, "keyCompromise", world.clock.value)
    world.clock.value += MARK_MAX_AGE_US
    second = await world.publisher.current()
    assert second is not first
    assert int(theirs.serial, 16) not in entries(x509.load_der_x509_crl(second.der))
    # Once our certificate has expired, the next CRL leaves it out.
    world.clock.value = ours.not_after
    expired = await world.publisher.current()
    assert int(ours.serial, 16) not in entries(x509.load_der_x509_crl(expired.der))


# --- rebuilds: one at a time, off the event loop, the previous CRL meanwhile ------------------


async def test_concurrent_requests_share_one_rebuild(world: World) -> None:
    cert = await world.certificate(await world.device())
    first = await world.publisher.current()
    await revoke(world.store, world.tenant.live, cert.id, "keyCompromise", world.clock.value)
    world.clock.value += MARK_MAX_AGE_US
    answers = await asyncio.gather(*(world.publisher.current() for _ in range(20)))
    assert all(answer is answers[0] for answer in answers)  # one CRL made, not twenty
    assert answers[0] is not first
    assert int(cert.serial, 16) in entries(x509.load_der_x509_crl(answers[0].der))


async def test_the_previous_crl_is_served_until_the_rebuild_is_done(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no wait at all: the request that starts the rebuild, and those during it, get the
    previous CRL; once it is done, the new one. (The first CRL is always waited for.)"""
    publisher = CrlPublisher(world.store, world.ca, world.clock, rebuild_wait=0)
    cert = await world.certificate(await world.device())
    first = await publisher.current()
    await revoke(world.store, world.tenant.live, cert.id, "keyCompromise", world.clock.value)
    world.clock.value += MARK_MAX_AGE_US
    release, reads = asyncio.Event(), world.store.revoked_page

    async def held(now: int, after: tuple[int, bytes] | None, limit: int) -> list[RevokedEntry]:
        await release.wait()  # the rebuild is under way until the test lets it go on
        return await reads(now, after, limit)

    monkeypatch.setattr(world.store, "revoked_page", held)
    during = await asyncio.gather(*(publisher.current() for _ in range(5)))
    assert all(answer is first for answer in during)
    release.set()
    for _ in range(500):  # the rest runs in a thread: a bounded wait for it
        if (latest := await publisher.current()) is not first:
            break
        await asyncio.sleep(0.01)
    assert latest is not first
    assert int(cert.serial, 16) in entries(x509.load_der_x509_crl(latest.der))


async def test_a_failed_rebuild_keeps_the_previous_crl_and_is_tried_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert = await world.certificate(await world.device())
    first = await world.publisher.current()
    await revoke(world.store, world.tenant.live, cert.id, "keyCompromise", world.clock.value)
    world.clock.value += MARK_MAX_AGE_US

    async def unavailable(*args: object) -> list[RevokedEntry]:
        raise StoreUnavailable("database unavailable: test")

    with monkeypatch.context() as patched:
        patched.setattr(world.store, "revoked_page", unavailable)
        assert await world.publisher.current() is first
    rebuilt = await world.publisher.current()  # the next request tries again
    assert rebuilt is not first
    assert int(cert.serial, 16) in entries(x509.load_der_x509_crl(rebuilt.der))


async def test_without_a_crl_yet_a_failed_build_is_the_requests_error(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unavailable(*args: object) -> list[RevokedEntry]:
        raise StoreUnavailable("database unavailable: test")

    monkeypatch.setattr(world.store, "revoked_page", unavailable)
    with pytest.raises(StoreUnavailable):
        await world.publisher.current()
