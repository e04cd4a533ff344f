"""The Change each kind of write logs: which record, its whole before and after."""

from __future__ import annotations

from devreg.changelog import records
from devreg.changelog.entries import Action, Change, ObjectType
from devreg.core.records import (
    Account,
    ApiKey,
    Certificate,
    Device,
    DeviceProfile,
    Division,
    ProfileField,
)

DeviceState = tuple[Device, dict[bytes, str]]  # a device and its field values


def created_account(account: Account) -> Change:
    return Change(
        Action.ACCOUNT_CREATE, ObjectType.ACCOUNT, account.id, account.id, None, None,
        None, records.account_record(account),
    )  # fmt: skip


def updated_account(old: Account, new: Account) -> Change:
    return Change(
        Action.ACCOUNT_UPDATE, ObjectType.ACCOUNT, new.id, new.id, None, None,
        records.account_record(old), records.account_record(new),
    )  # fmt: skip


def created_key(key: ApiKey) -> Change:
    return Change(
        Action.API_KEY_CREATE, ObjectType.API_KEY, key.id, key.account_id, key.live_mode, None,
        None, records.api_key_record(key),
    )  # fmt: skip


def changed_key(action: Action, old: ApiKey, new: ApiKey) -> Change:
    """A key revoked (API_KEY_REVOKE) or set to expire by a rotation (API_KEY_ROTATE)."""
    return Change(
        action, ObjectType.API_KEY, new.id, new.account_id, new.live_mode, None,
        records.api_key_record(old), records.api_key_record(new),
    )  # fmt: skip


def account_status(old: Account, new: Account) -> Change:
    action = Action.ACCOUNT_ENABLE if new.disabled_at is None else Action.ACCOUNT_DISABLE
    return Change(
        action, ObjectType.ACCOUNT, new.id, new.id, None, None,
        records.account_record(old), records.account_record(new),
    )  # fmt: skip


def created_division(division: Division) -> Change:
    return Change(
        Action.DIVISION_CREATE, ObjectType.DIVISION, division.id, division.account_id, None,
        None, None, records.division_record(division),
    )  # fmt: skip


def created_profile(profile: DeviceProfile, fields: list[ProfileField]) -> Change:
    return Change(
        Action.PROFILE_CREATE, ObjectType.PROFILE, profile.id, profile.account_id, None, None,
        None, records.profile_record(profile, fields),
    )  # fmt: skip


def updated_profile(
    old: DeviceProfile,
    old_fields: list[ProfileField],
    new: DeviceProfile,
    new_fields: list[ProfileField],
) -> Change:
    return Change(
        Action.PROFILE_UPDATE, ObjectType.PROFILE, new.id, new.account_id, None, None,
        records.profile_record(old, old_fields), records.profile_record(new, new_fields),
    )  # fmt: skip


def created_device(action: Action, device: Device, values: dict[bytes, str]) -> Change:
    return Change(
        action, ObjectType.DEVICE, device.id, device.account_id, device.live_mode,
        device.version, None, records.device_record(device, values),
    )  # fmt: skip


def updated_device(action: Action, old: DeviceState, new: DeviceState) -> Change:
    device = new[0]
    return Change(
        action, ObjectType.DEVICE, device.id, device.account_id, device.live_mode,
        device.version, records.device_record(*old), records.device_record(*new),
    )  # fmt: skip


def certificate(
    action: Action, old: Certificate | None, new: Certificate, live_mode: bool | None
) -> Change:
    return Change(
        action, ObjectType.CERTIFICATE, new.id, new.account_id, live_mode, None,
        None if old is None else records.certificate_record(old),
        records.certificate_record(new),
    )  # fmt: skip


SecretRow = tuple[bytes, bytes, int, int]  # id, device id, created, expires


def secret(action: Action, device: Device, row: SecretRow, state: str) -> Change:
    secret_id, device_id, created, expires = row
    after = records.enrollment_secret_record(secret_id, device_id, created, expires, state)
    before = (
        None
        if action is Action.SECRET_CREATE
        else records.enrollment_secret_record(secret_id, device_id, created, expires, "outstanding")
    )
    return Change(
        action, ObjectType.ENROLLMENT_SECRET, secret_id, device.account_id, device.live_mode,
        None, before, after,
    )  # fmt: skip
