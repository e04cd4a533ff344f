"""One-time enrollment secrets: made by an admin for one device, used once by that device
to enroll over EST with HTTP Basic `<device UUID>:<secret>`. Only a hash is kept.

A device has at most one outstanding secret (a new one replaces it), an admin can revoke
it, and an account holds at most `max_outstanding` at once. Enrolling checks the secret
before anything costly (the request's signature), and spends it only on a request that
will be issued."""

from __future__ import annotations

import hashlib
import secrets

import msgspec
from cryptography import x509

from devreg.changelog.entries import Action
from devreg.core import reach
from devreg.core.access import AccountGate
from devreg.core.clock import now_us
from devreg.core.errors import AccountDisabled, LimitReached, Unauthenticated
from devreg.core.ids import new_id, render_uuid
from devreg.core.records import Actor, ActorKind, Caller, Certificate, DeviceStatus
from devreg.core.store import DeviceStore, OverLimit
from devreg.pki.issuing import CertificateService, check_csr, csr_key
from devreg.pki.provenance import IssuedBy

SECRET_LIFETIME_US = 24 * 3600 * 1_000_000
DEFAULT_MAX_OUTSTANDING_SECRETS = 1000  # per account: unused, unrevoked, unexpired
_REFUSED = "Unknown or inactive device, or the enrollment secret is wrong, used or expired"


class EnrollmentSecret(msgspec.Struct, frozen=True):
    secret: str
    expires_at: int
    replaced: int  # outstanding secrets of the device this one revoked


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


async def create_secret(
    store: DeviceStore,
    caller: Caller,
    device_id: bytes,
    *,
    max_outstanding: int = DEFAULT_MAX_OUTSTANDING_SECRETS,
) -> EnrollmentSecret:
    """A new secret for the device, replacing (revoking) its outstanding one; LimitReached
    when the account already has `max_outstanding` outstanding secrets."""
    device = await reach.reachable_device(store, caller, device_id)
    secret = secrets.token_urlsafe(24)
    now = now_us()
    expires_at = now + SECRET_LIFETIME_US
    try:
        replaced = await store.insert_enrollment_secret(
            new_id(), device, _hash(secret), now, expires_at, caller.origin,
            max_outstanding=max_outstanding,
        )  # fmt: skip
    except OverLimit:
        raise LimitReached(
            f"The account already has {max_outstanding} outstanding enrollment secrets, the"
            " most it may hold: use or revoke some, or wait for them to expire (24 h)",
            "enrollment_secret_limit",
        ) from None
    return EnrollmentSecret(secret=secret, expires_at=expires_at, replaced=replaced)


async def revoke_secrets(store: DeviceStore, caller: Caller, device_id: bytes) -> int:
    """Revoke the device's outstanding secret(s); how many there were (0: nothing to do)."""
    device = await reach.reachable_device(store, caller, device_id)
    return await store.revoke_enrollment_secrets(device, now_us(), caller.origin)


async def authenticate_secret(
    store: DeviceStore,
    accounts: AccountGate,
    device_id: bytes,
    secret: str,
    credential_id: str,
    request_id: str,
) -> Caller:
    """The device as a caller, if it is ACTIVE, its account is not disabled and `secret`
    is its outstanding secret; the secret is not spent. A disabled device or account is
    refused like a wrong secret, so that nobody without the secret learns the device's
    status; its secret works once it is enabled again."""
    device = await store.get_device_by_id(device_id)
    secret_id = None
    if device is not None and device.status is DeviceStatus.ACTIVE:
        secret_id = await store.enrollment_secret_valid(device.id, _hash(secret), now_us())
    if device is None or secret_id is None:
        raise Unauthenticated(_REFUSED)
    try:
        await accounts.check_account(device.account_id)
    except AccountDisabled:
        raise Unauthenticated(_REFUSED) from None
    return Caller(
        account_id=device.account_id, live_mode=device.live_mode, credential_id=credential_id,
        actor=Actor(ActorKind.ENROLLMENT_SECRET, render_uuid(secret_id)),
        request_id=request_id, device=device,
    )  # fmt: skip


async def enroll_with_secret(
    store: DeviceStore,
    certificates: CertificateService,
    caller: Caller,
    secret: str,
    csr: x509.CertificateSigningRequest,
) -> Certificate:
    """EST simpleenroll for a device `authenticate_secret` accepted: the device's limits,
    the request (key policy, then signature, then the key's owner), and only then the
    secret is spent, so a refused request leaves it usable."""
    device = caller.device
    assert device is not None  # authenticate_secret made the caller
    await certificates.admit(device)
    key = csr_key(check_csr(csr))
    await certificates.check_key_free(device, key)
    secret_id = await store.consume_enrollment_secret(
        device, _hash(secret), now_us(), caller.origin
    )
    if secret_id is None:  # spent, revoked or replaced since it was checked
        raise Unauthenticated(_REFUSED)
    return await certificates.issue(
        device, key, IssuedBy.enrollment_secret(secret_id), caller.origin,
        Action.CERTIFICATE_ENROLL,
    )  # fmt: skip
