"""What a device may do with its own record over client authentication (seed 003): the
certificate must be registered, unrevoked and valid now, belong to the device in the path,
the device must be ACTIVE and the action's device_api_allow_* flag true."""

from __future__ import annotations

import msgspec
import pytest

from devreg.core.access import Action, check_certificate, check_device_access
from devreg.core.errors import Forbidden
from devreg.core.ids import new_id
from devreg.core.records import Certificate, Device, DeviceStatus

NOW = 1_700_000_000_000_000
DAY = 86_400_000_000
ACTIONS: list[Action] = ["read", "write", "renew"]
FLAG_NAMES = {
    "read": "device_api_allow_read",
    "write": "device_api_allow_write",
    "renew": "device_api_allow_renew_certificate",
}
FLAG_COLUMNS = {"read": "allow_read", "write": "allow_write", "renew": "allow_renew"}


def make_device() -> Device:
    return Device(
        id=new_id(),
        account_id=new_id(),
        live_mode=True,
        reference_id=None,
        device_identifier="gw-1",
        division_id=new_id(),
        profile_id=new_id(),
        status=DeviceStatus.ACTIVE,
        allow_read=True,
        allow_write=True,
        allow_renew=True,
        last_seen=None,
        created_at=NOW - DAY,
        updated_at=NOW - DAY,
        version=1,
    )


def make_certificate(device: Device) -> Certificate:
    return Certificate(
        id=new_id(),
        account_id=device.account_id,
        device_id=device.id,
        serial="0A1B",
        fingerprint=b"\x01" * 32,
        public_key_hash=b"\x02" * 32,
        pem="-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
        not_before=NOW - DAY,
        not_after=NOW + 90 * DAY,
        issuer="devreg",
        created_at=NOW - DAY,
    )


@pytest.fixture
def device() -> Device:
    return make_device()


@pytest.fixture
def cert(device: Device) -> Certificate:
    return make_certificate(device)


# --- check_certificate --------------------------------------------------------------------


def test_a_valid_certificate_passes(cert: Certificate) -> None:
    assert check_certificate(cert, NOW) is cert
    assert check_certificate(cert, cert.not_before) is cert  # valid from not_before on
    assert check_certificate(cert, cert.not_after - 1) is cert


def test_an_unregistered_certificate_is_forbidden() -> None:
    with pytest.raises(Forbidden) as caught:
        check_certificate(None, NOW)
    assert "not registered" in caught.value.message


def test_a_revoked_certificate_is_forbidden(cert: Certificate) -> None:
    revoked = msgspec.structs.replace(cert, revoked_at=NOW - 1, revocation_reason="keyCompromise")
    with pytest.raises(Forbidden) as caught:
        check_certificate(revoked, NOW)
    assert "revoked" in caught.value.message


@pytest.mark.parametrize(
    "now",
    [NOW - 2 * DAY, NOW - DAY - 1, NOW + 90 * DAY, NOW + 91 * DAY],
    ids=["long before", "just before not_before", "at not_after", "after not_after"],
)
def test_a_certificate_outside_its_validity_is_forbidden(cert: Certificate, now: int) -> None:
    with pytest.raises(Forbidden) as caught:
        check_certificate(cert, now)
    assert "not valid" in caught.value.message


# --- check_device_access ------------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
def test_own_active_device_with_the_flag_is_allowed(
    cert: Certificate, device: Device, action: Action
) -> None:
    assert check_device_access(cert, device, device.id, action) is device


def test_another_devices_certificate_is_forbidden(cert: Certificate, device: Device) -> None:
    other = make_device()
    # The certificate is the other device's; the path names this device (or the other one).
    for path_id in (device.id, other.id):
        with pytest.raises(Forbidden) as caught:
            check_device_access(make_certificate(other), device, path_id, "read")
        assert "does not belong" in caught.value.message


def test_a_path_naming_another_device_is_forbidden(cert: Certificate, device: Device) -> None:
    for path_id in (make_device().id, new_id(), b""):
        with pytest.raises(Forbidden) as caught:
            check_device_access(cert, device, path_id, "write")
        assert "does not belong" in caught.value.message


def test_a_missing_device_is_forbidden_not_not_found(cert: Certificate) -> None:
    with pytest.raises(Forbidden):
        check_device_access(cert, None, cert.device_id, "read")


@pytest.mark.parametrize("status", [DeviceStatus.DISABLED, DeviceStatus.DELETED])
@pytest.mark.parametrize("action", ACTIONS)
def test_a_device_that_is_not_active_is_forbidden(
    cert: Certificate, device: Device, status: DeviceStatus, action: Action
) -> None:
    stopped = msgspec.structs.replace(device, status=status)
    with pytest.raises(Forbidden) as caught:
        check_device_access(cert, stopped, device.id, action)
    assert "not active" in caught.value.message


@pytest.mark.parametrize("action", ACTIONS)
def test_each_false_flag_forbids_its_action_and_names_the_flag(
    cert: Certificate, device: Device, action: Action
) -> None:
    closed = msgspec.structs.replace(device, **{FLAG_COLUMNS[action]: False})
    with pytest.raises(Forbidden) as caught:
        check_device_access(cert, closed, device.id, action)
    assert FLAG_NAMES[action] in caught.value.message
    # The other two actions are still allowed.
    for other in ACTIONS:
        if other != action:
            assert check_device_access(cert, closed, device.id, other) is closed
