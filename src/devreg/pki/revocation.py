"""Revocation and its publication: RFC 5280 reasons, and the CA's CRL, rebuilt whenever a
certificate is revoked and before its nextUpdate.

Refusal itself does not wait for the CRL: every client-auth request looks the certificate
up in the shared database, so a revocation holds from the moment its call returns, in every
process and on connections opened before it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable

import msgspec
from cryptography import x509

from devreg.core import reach
from devreg.core.clock import now_us
from devreg.core.errors import InvalidInput, NotFound
from devreg.core.reach import NO_CERTIFICATE
from devreg.core.records import Caller, Certificate, RevokedEntry
from devreg.core.store import DeviceStore
from devreg.pki import crl_der
from devreg.pki.ca import BACKDATE, CertificateAuthority

log = logging.getLogger("devreg.pki")

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
_REFRESH_BEFORE_US = int(CRL_REFRESH_BEFORE.total_seconds() * 1_000_000)
# How long a process trusts the revocation mark it last read: CRL fetches cost at most one
# primary-key read per process and second. Refusal over mTLS never waits for it (every
# request looks its certificate up); only the published CRL may lag by this much.
MARK_MAX_AGE_SECONDS = 1.0
MARK_MAX_AGE_US = int(MARK_MAX_AGE_SECONDS * 1_000_000)
# How long a CRL request waits for a rebuild under way before it is answered the previous
# CRL: long enough for the usual CRL to be fresh right after a revocation.
REBUILD_WAIT_SECONDS = 1.0
ENCODE_CHUNK = 500  # entries encoded between two pauses of the rebuild's thread (~1.5 ms)
GIL_PAUSE_SECONDS = 0.0002
CRL_PAGE = 1_000  # entries per statement: a SQLite page is read inline, about 2 ms


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
    if reach.limited(caller):  # its device must be in reach (what it minted is that device's)
        await reach.reachable_certificate(store, caller, cert_id)
    if name == CASCADING_REASON:
        found = await store.revoke_with_minted(
            caller.account_id, caller.live_mode, cert_id, name, now, caller.origin
        )
        if found is None:
            raise NotFound(NO_CERTIFICATE)
        return Revocation(certificate=found[0], minted=found[1])
    revoked = await store.revoke_certificate(
        caller.account_id, caller.live_mode, cert_id, name, now, caller.origin
    )
    if revoked is not None:
        return Revocation(certificate=revoked, minted=[])
    existing = await store.get_certificate(caller.account_id, caller.live_mode, cert_id)
    if existing is None:
        raise NotFound(NO_CERTIFICATE)
    return Revocation(certificate=existing, minted=[])


async def revoke_device_certificates(
    store: DeviceStore, caller: Caller, device_id: bytes, reason: str, now: int
) -> list[Certificate]:
    """Revoke every unrevoked certificate of one of the caller's devices; those revoked now.
    A deleted device is not found, as everywhere (deleting revoked its certificates). What
    a device's certificates minted is the same device's, so nothing else needs following."""
    name = reason_name(reason)
    device = await reach.reachable_device(store, caller, device_id)
    return await store.revoke_all_certificates(
        device.account_id, device.id, name, now, caller.origin
    )


class Crl(msgspec.Struct, frozen=True):
    der: bytes
    pem: bytes
    next_update: int  # microseconds
    mark: tuple[int, int | None]


def _moment(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / 1_000_000, tz=dt.UTC)


class CrlPublisher:
    """The CA's current CRL. Each process rebuilds it when the revocation mark in the
    database moves (a revocation anywhere) or when nextUpdate draws near.

    The mark is read at most every MARK_MAX_AGE; a rebuild reads the entries a page at a
    time and encodes and signs in a thread, so the event loop serves on. One rebuild runs
    at a time per process; requests meanwhile wait for it up to `rebuild_wait` seconds and
    are then answered the previous CRL (only the first CRL of a process is always waited
    for)."""

    def __init__(
        self,
        store: DeviceStore,
        ca: CertificateAuthority,
        clock: Callable[[], int] = now_us,
        *,
        rebuild_wait: float = REBUILD_WAIT_SECONDS,
    ) -> None:
        self.store = store
        self.ca = ca
        self.clock = clock
        self.rebuild_wait = rebuild_wait
        self._current: Crl | None = None
        self._number = 0
        self._mark: tuple[int, int | None] | None = None
        self._mark_read_at = 0
        self._rebuild: asyncio.Task[Crl] | None = None
        self._authority_key_id = x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca.key.public_key()
        )

    async def current(self) -> Crl:
        now = self.clock()
        mark = await self._read_mark(now)
        crl = self._current
        if crl is not None and crl.mark == mark and now < crl.next_update - _REFRESH_BEFORE_US:
            return crl
        if self._rebuild is None:
            self._rebuild = asyncio.create_task(self._build(mark, now))
            self._rebuild.add_done_callback(self._rebuilt)
        rebuild = asyncio.shield(self._rebuild)
        if crl is None:
            return await rebuild
        try:
            return await asyncio.wait_for(rebuild, self.rebuild_wait)
        except TimeoutError:
            return crl  # the rebuild goes on; the next request may get its result
        except Exception as exc:  # logged once, by _rebuilt; the previous CRL still holds
            log.debug("CRL rebuild failed, serving the previous CRL: %s", exc)
            return crl

    async def _read_mark(self, now: int) -> tuple[int, int | None]:
        # A clock that went back counts as expired, so the mark is never kept for longer.
        if self._mark is None or not 0 <= now - self._mark_read_at < MARK_MAX_AGE_US:
            self._mark = await self.store.revocation_mark()
            self._mark_read_at = now
        return self._mark

    def _rebuilt(self, task: asyncio.Task[Crl]) -> None:
        self._rebuild = None
        if task.cancelled():
            return
        failure = task.exception()
        if failure is not None:
            log.warning("CRL rebuild failed: %s: %s", type(failure).__name__, failure)
            return
        self._current = task.result()

    async def _build(self, mark: tuple[int, int | None], now: int) -> Crl:
        # Backdated like the certificates, for relying parties whose clocks run behind.
        this_update = _moment(now) - BACKDATE
        next_update = _moment(now) + CRL_LIFETIME
        # The number grows with each rebuild; two processes with the same revocations in the
        # same hour give the same number (the latest revocation or the hour, in microseconds).
        hour = 3_600_000_000
        number = max(mark[1] or 0, now - now % hour, self._number + 1)
        self._number = number
        entries = await self._entries(now)
        der, pem = await asyncio.to_thread(self._sign, entries, this_update, next_update, number)
        return Crl(
            der=der, pem=pem, next_update=int(next_update.timestamp() * 1_000_000), mark=mark
        )

    async def _entries(self, now: int) -> list[RevokedEntry]:
        """Every entry, a page at a time; between pages the event loop serves others (a
        SQLite read runs inline)."""
        entries: list[RevokedEntry] = []
        after: tuple[int, bytes] | None = None
        while True:
            page = await self.store.revoked_page(now, after, CRL_PAGE)
            entries += page
            if len(page) < CRL_PAGE:
                return entries
            after = (page[-1].revoked_at, page[-1].id)
            await asyncio.sleep(0)

    def _sign(
        self,
        entries: list[RevokedEntry],
        this_update: dt.datetime,
        next_update: dt.datetime,
        number: int,
    ) -> tuple[bytes, bytes]:
        """In a thread: the encoding is plain Python and the signature is over a digest
        hashlib makes without the GIL (pki/crl_der.py). Between chunks the thread sleeps a
        moment, so the event loop gets the GIL when it wakes instead of waiting out
        CPython's switch interval (5 ms) on every request."""
        encoded: list[bytes] = []
        for start in range(0, len(entries), ENCODE_CHUNK):
            encoded += [
                crl_der.entry(
                    int(found.serial, 16),
                    found.revoked_at // 1_000_000,
                    REASONS[found.reason] if found.reason else None,
                )
                for found in entries[start : start + ENCODE_CHUNK]
            ]
            time.sleep(GIL_PAUSE_SECONDS)
        tbs = crl_der.tbs_cert_list(
            self.ca.certificate.subject,
            this_update,
            next_update,
            number,
            self._authority_key_id,
            encoded,
        )
        der = crl_der.signed(tbs, self.ca.key)
        return der, crl_der.pem(der)
