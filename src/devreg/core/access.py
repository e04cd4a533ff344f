"""What a device may do with its own record over client authentication (seed 003)."""

from __future__ import annotations

from typing import Literal

from devreg.core.errors import Forbidden
from devreg.core.records import Certificate, Device, DeviceStatus

Action = Literal["read", "write", "renew"]


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
    if device is None or device.id != cert.device_id or path_device_id != device.id:
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
