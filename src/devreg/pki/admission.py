"""Limits on issuance per device, checked before a request's signature is: a stolen
certificate (or a leaked key) can hold only a few active certificates at once and mint
new ones only slowly, and refusing costs no signature check. Only an issuance spends a
token: requests refused for what they carry do not use up the device's budget."""

from __future__ import annotations

from typing import Protocol

from devreg.core.errors import LimitReached
from devreg.core.records import Device

DEFAULT_MAX_ACTIVE_CERTIFICATES = 5  # unrevoked, unexpired, per device
DEFAULT_ISSUANCE_PER_HOUR = 30.0  # per device, refilling the bucket below
DEFAULT_ISSUANCE_BURST = 5


class Bucket(Protocol):
    """A token bucket keyed by name (auth/rate_limit.py's limiters are ones)."""

    async def check(self, credential: str, cost: int = 1) -> None: ...


class ActiveCount(Protocol):
    async def count_active_certificates(self, device_id: bytes, now: int) -> int: ...


def over_cap(max_active: int) -> LimitReached:
    return LimitReached(
        f"The device already has {max_active} active certificates, the most it may hold:"
        " revoke one (PUT /iot/api/v2/certificate/{id}/revoke, reason superseded) first",
        "active_certificate_limit",
    )


class IssuanceLimits:
    def __init__(
        self, max_active: int = DEFAULT_MAX_ACTIVE_CERTIFICATES, bucket: Bucket | None = None
    ) -> None:
        self.max_active = max_active
        self.bucket = bucket

    async def admit(self, store: ActiveCount, device: Device, now: int) -> None:
        """Before the request is looked at: LimitReached when the device is at its cap (the
        insert checks again, in its transaction), RateLimited (429) while its bucket is
        empty. Takes nothing: a refused request costs the device no token."""
        if await store.count_active_certificates(device.id, now) >= self.max_active:
            raise over_cap(self.max_active)
        if self.bucket is not None:
            await self.bucket.check(_bucket_of(device), cost=0)

    async def take(self, device: Device) -> None:
        """One token, as the certificate is about to be signed; RateLimited when none is
        left (another issuance took it since `admit`)."""
        if self.bucket is not None:
            await self.bucket.check(_bucket_of(device))


def _bucket_of(device: Device) -> str:
    return "issue:" + device.id.hex()
