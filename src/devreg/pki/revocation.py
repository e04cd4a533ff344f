"""Revocation and its publication: RFC 5280 reasons, and the CA's CRL, rebuilt whenever a
certificate is revoked and before its nextUpdate.

Refusal itself does not wait for the CRL: every client-auth request looks the certificate
up in the shared database, so a revocation holds from the moment its call returns, in every
process and on connections opened before it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from devreg.core.clock import now_us
from devreg.core.errors import InvalidInput, NotFound
from devreg.core.records import Caller, Certificate
from devreg.core.store import DeviceStore
from devreg.pki.ca import BACKDATE, CertificateAuthority

# RFC 5280 section 5.3.1 names (removeFromCRL only applies to delta CRLs: not offered).
REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "cACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
    "aACompromise": x509.ReasonFlags.aa_compromise,
}
_BY_LOWER = {name.lower(): name for name in REASONS}
CRL_LIFETIME = dt.timedelta(days=1)
CRL_REFRESH_BEFORE = dt.timedelta(hours=1)


def reason_name(text: str) -> str:
    """The RFC 5280 name for `text` (case-insensitive), or InvalidInput listing them."""
    name = _BY_LOWER.get(text.strip().lower())
    if name is None:
        raise InvalidInput(f"reason must be one of: {', '.join(REASONS)}", "reason")
    return name


# A certificate whose key is compromised may have minted others (re-enrollments and
# renewals it authenticated, with keys its thief chose): they go with it.
CASCADING_REASON = "keyCompromise"


class Revocation(msgspec.Struct, frozen=True):
    certificate: Certificate  # as it now is
    minted: list[Certificate]  # revoked with it, for keyCompromise


async def revoke(
    store: DeviceStore, caller: Caller, cert_id: bytes, reason: str, now: int
) -> Certificate:
    """Revoke one of the caller's certificates (see revoke_with_minted)."""
    return (await revoke_with_minted(store, caller, cert_id, reason, now)).certificate


async def revoke_with_minted(
    store: DeviceStore, caller: Caller, cert_id: bytes, reason: str, now: int
) -> Revocation:
    """Revoke one of the caller's certificates. Revoking a revoked certificate changes its
    record in no way and answers its existing revocation (PUT is idempotent). For
    keyCompromise, every certificate it minted is revoked too, transitively, in the same
    transaction (also when it was revoked before for another reason)."""
    name = reason_name(reason)
    if name == CASCADING_REASON:
        found = await store.revoke_with_minted(
            caller.account_id, caller.live_mode, cert_id, name, now
        )
        if found is None:
            raise NotFound("Certificate does not exist")
        return Revocation(certificate=found[0], minted=found[1])
    revoked = await store.revoke_certificate(
        caller.account_id, caller.live_mode, cert_id, name, now
    )
    if revoked is not None:
        return Revocation(certificate=revoked, minted=[])
    existing = await store.get_certificate(caller.account_id, caller.live_mode, cert_id)
    if existing is None:
        raise NotFound("Certificate does not exist")
    return Revocation(certificate=existing, minted=[])


async def revoke_device_certificates(
    store: DeviceStore, caller: Caller, device_id: bytes, reason: str, now: int
) -> list[Certificate]:
    """Revoke every unrevoked certificate of one of the caller's devices; those revoked now.
    A deleted device is not found, as everywhere (deleting revoked its certificates). What
    a device's certificates minted is the same device's, so nothing else needs following."""
    name = reason_name(reason)
    device = await store.get_device(caller.account_id, caller.live_mode, device_id)
    if device is None:
        raise NotFound("No such device")
    return await store.revoke_all_certificates(device.account_id, device.id, name, now)


class Crl(msgspec.Struct, frozen=True):
    der: bytes
    pem: bytes
    next_update: int  # microseconds
    mark: tuple[int, int | None]


def _moment(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / 1_000_000, tz=dt.UTC)


class CrlPublisher:
    """The CA's current CRL; each process rebuilds it when the revocation mark in the
    database moves (a revocation anywhere) or when nextUpdate draws near."""

    def __init__(
        self, store: DeviceStore, ca: CertificateAuthority, clock: Callable[[], int] = now_us
    ) -> None:
        self.store = store
        self.ca = ca
        self.clock = clock
        self._current: Crl | None = None
        self._number = 0

    async def current(self) -> Crl:
        mark = await self.store.revocation_mark()
        now = self.clock()
        refresh_at = (
            self._current.next_update - int(CRL_REFRESH_BEFORE.total_seconds() * 1_000_000)
            if self._current
            else 0
        )
        if self._current is None or self._current.mark != mark or now >= refresh_at:
            self._current = await self._build(mark, now)
        return self._current

    async def _build(self, mark: tuple[int, int | None], now: int) -> Crl:
        # Backdated like the certificates, for relying parties whose clocks run behind.
        this_update = _moment(now) - BACKDATE
        next_update = _moment(now) + CRL_LIFETIME
        # The number grows with each rebuild; two processes with the same revocations in the
        # same hour give the same number (the latest revocation or the hour, in microseconds).
        hour = 3_600_000_000
        number = max(mark[1] or 0, now - now % hour, self._number + 1)
        self._number = number
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca.certificate.subject)
            .last_update(this_update)
            .next_update(next_update)
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca.key.public_key()),
                critical=False,
            )
        )
        for serial, revoked_at, reason in await self.store.revoked_serials(now):
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(int(serial, 16))
                .revocation_date(_moment(revoked_at))
            )
            if reason and reason != "unspecified":
                entry = entry.add_extension(x509.CRLReason(REASONS[reason]), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        crl = builder.sign(self.ca.key, hashes.SHA256())
        return Crl(
            der=crl.public_bytes(serialization.Encoding.DER),
            pem=crl.public_bytes(serialization.Encoding.PEM),
            next_update=int(next_update.timestamp() * 1_000_000),
            mark=mark,
        )
