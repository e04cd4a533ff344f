"""What a device may do with its own record (seed 003), in one place: over client
authentication (dialect D) and over EST alike. Its own record only, while ACTIVE and the
flag for the action is set; never its own flags; and every accepted call moves its
`last_seen` (`DeviceService.seen`, or inside its own update's write)."""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

from devreg.core.clock import now_us
from devreg.core.errors import Forbidden
from devreg.core.ids import render_uuid
from devreg.core.records import Actor, ActorKind, Caller, Certificate, Device, DeviceStatus
from devreg.core.store import DeviceStore

Action = Literal["read", "write", "renew"]


class AccountGate(Protocol):
    """Whether an account is disabled, as fresh as a revocation needs
    (auth/access_gate.py:AccessGate)."""

    async def check_account(self, account_id: bytes) -> None:
        """AccountDisabled if it is."""


def check_certificate(cert: Certificate | None, now: int) -> Certificate:
    if cert is None:
        raise Forbidden("The client certificate is not registered to any device")
    if cert.revoked_at is not None:
        raise Forbidden("The client certificate has been revoked")
    if not cert.not_before <= now < cert.not_after:
        raise Forbidden("The client certificate is not valid at this time")
    return cert


def check_device_access(
    cert: Certificate, device: Device | None, path_device_id: bytes, action: Action
) -> Device:
    """The certificate's own device, ACTIVE, with the flag for `action` set; otherwise
    Forbidden (never NotFound: a device must not learn which other ids exist)."""
    if device is None or device.id != cert.device_id:
        raise Forbidden("The client certificate does not belong to this device")
    return _check_device(device, path_device_id, action)


def own_record(caller: Caller, device_id: bytes, action: Action) -> Device:
    """The calling device's record, as checked when it authenticated, if `device_id` is it
    and it may still do `action`."""
    if caller.device is None:
        raise Forbidden("The caller is not a device")
    return _check_device(caller.device, device_id, action)


def _check_device(device: Device, path_device_id: bytes, action: Action) -> Device:
    if path_device_id != device.id:
        raise Forbidden("The client certificate does not belong to this device")
    if device.status is not DeviceStatus.ACTIVE:
        raise Forbidden("The device is not active")
    allowed = {"read": device.allow_read, "write": device.allow_write, "renew": device.allow_renew}
    if not allowed[action]:
        raise Forbidden(
            f"device_api_allow_{'renew_certificate' if action == 'renew' else action}"
            " is false for this device"
        )
    return device


class DeviceFlags(msgspec.Struct, frozen=True):
    """The device_api_allow_* flags a request sets; UNSET: not sent."""

    allow_read: bool | msgspec.UnsetType = msgspec.UNSET
    allow_write: bool | msgspec.UnsetType = msgspec.UNSET
    allow_renew: bool | msgspec.UnsetType = msgspec.UNSET


def check_own_flags(device: Device, flags: DeviceFlags) -> None:
    """A device never changes its own flags; sending them back as they are (a record read
    and sent back whole) changes nothing and is allowed."""
    for name in ("allow_read", "allow_write", "allow_renew"):
        sent = getattr(flags, name)
        if sent is not msgspec.UNSET and sent != getattr(device, name):
            raise Forbidden("A device cannot change its own device_api_allow_* flags")


async def authenticate_device(
    store: DeviceStore,
    accounts: AccountGate,
    digest: bytes,
    device_id: bytes | None,
    action: Action,
    request_id: str,
) -> tuple[Caller, Certificate]:
    """The caller a device's certificate (SHA-256 `digest`) makes, if the certificate is
    registered, unrevoked and valid and its device may do `action` on `device_id` (None:
    on itself, as over EST), and its account is not disabled. Looked up on every request,
    so a revocation holds at once."""
    record = check_certificate(await store.find_certificate(digest), now_us())
    await accounts.check_account(record.account_id)
    device = await store.get_device_by_id(record.device_id)
    device = check_device_access(
        record, device, record.device_id if device_id is None else device_id, action
    )
    caller = Caller(
        account_id=device.account_id, live_mode=device.live_mode,
        credential_id="cert:" + digest.hex()[:32],
        actor=Actor(ActorKind.DEVICE_CERTIFICATE, render_uuid(record.id)),
        request_id=request_id, device=device,
    )  # fmt: skip
    return caller, record
