"""One-time enrollment secrets: made by an admin for one device, used once by that device
to enroll over EST with HTTP Basic `<device UUID>:<secret>`. Only a hash is kept."""

from __future__ import annotations

import hashlib
import secrets

import msgspec

from devreg.core.clock import now_us
from devreg.core.errors import NotFound, Unauthenticated
from devreg.core.ids import new_id
from devreg.core.records import Caller, Device, DeviceStatus
from devreg.core.store import DeviceStore

SECRET_LIFETIME_US = 24 * 3600 * 1_000_000


class EnrollmentSecret(msgspec.Struct, frozen=True):
    secret: str
    expires_at: int


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


async def create_secret(store: DeviceStore, caller: Caller, device_id: bytes) -> EnrollmentSecret:
    device = await store.get_device(caller.account_id, caller.live_mode, device_id)
    if device is None:
        raise NotFound("No such device")
    secret = secrets.token_urlsafe(24)
    now = now_us()
    expires_at = now + SECRET_LIFETIME_US
    await store.insert_enrollment_secret(new_id(), device.id, _hash(secret), now, expires_at)
    return EnrollmentSecret(secret=secret, expires_at=expires_at)


async def redeem_secret(store: DeviceStore, device_id: bytes, secret: str) -> Device:
    """The device, if it is ACTIVE and `secret` is one of its unused, unexpired secrets (now
    used up). A disabled device's secret is not spent, so it works once the device is
    enabled again; it is refused like a wrong secret, so that nobody without the secret
    learns the device's status."""
    device = await store.get_device_by_id(device_id)
    if (
        device is None
        or device.status is not DeviceStatus.ACTIVE
        or not await store.consume_enrollment_secret(device.id, _hash(secret), now_us())
    ):
        raise Unauthenticated(
            "Unknown or inactive device, or the enrollment secret is wrong, used or expired"
        )
    return device
