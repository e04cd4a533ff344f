"""Whole records as the change log keeps them: every column but secrets (no key material,
no secret, no hash of one). Ids are UUID text, times integer microseconds."""

from __future__ import annotations

import msgspec

from devreg.core.ids import render_uuid, render_uuids
from devreg.core.records import (
    Account,
    ApiKey,
    Certificate,
    Device,
    DeviceProfile,
    Division,
    ProfileField,
)


def _uuid(value: bytes | None) -> str | None:
    return None if value is None else render_uuid(value)


class FieldValueRecord(msgspec.Struct, frozen=True):
    id: str
    value: str


class DeviceRecord(msgspec.Struct, frozen=True):
    id: str
    account_id: str
    live_mode: bool
    reference_id: str | None
    device_identifier: str | None
    division_id: str
    device_profile_id: str
    status: str
    device_api_allow_read: bool
    device_api_allow_write: bool
    device_api_allow_renew_certificate: bool
    last_seen: int | None
    created: int
    updated: int
    version: int
    fields: list[FieldValueRecord]


def device_record(device: Device, values: dict[bytes, str]) -> DeviceRecord:
    return DeviceRecord(
        id=render_uuid(device.id), account_id=render_uuid(device.account_id),
        live_mode=device.live_mode, reference_id=device.reference_id,
        device_identifier=device.device_identifier, division_id=render_uuid(device.division_id),
        device_profile_id=render_uuid(device.profile_id), status=device.status.value,
        device_api_allow_read=device.allow_read, device_api_allow_write=device.allow_write,
        device_api_allow_renew_certificate=device.allow_renew, last_seen=device.last_seen,
        created=device.created_at, updated=device.updated_at, version=device.version,
        fields=[FieldValueRecord(render_uuid(f), v) for f, v in sorted(values.items())],
    )  # fmt: skip


class CertificateRecord(msgspec.Struct, frozen=True):
    """The certificate itself included: it is public, and an operator can export from the
    log everything the CA issued."""

    id: str
    device_id: str
    serial_number: str
    thumbprint: str
    pem: str
    not_before: int
    not_after: int
    issuer: str
    created: int
    revoked_at: int | None
    revocation_reason: str | None
    issued_by: str | None
    parent_id: str | None


def certificate_record(cert: Certificate) -> CertificateRecord:
    return CertificateRecord(
        id=render_uuid(cert.id), device_id=render_uuid(cert.device_id), serial_number=cert.serial,
        thumbprint=cert.fingerprint.hex().upper(), pem=cert.pem, not_before=cert.not_before,
        not_after=cert.not_after, issuer=cert.issuer, created=cert.created_at,
        revoked_at=cert.revoked_at, revocation_reason=cert.revocation_reason,
        issued_by=cert.issued_by, parent_id=_uuid(cert.parent_id),
    )  # fmt: skip


class FieldRecord(msgspec.Struct, frozen=True):
    id: str
    name: str
    mandatory: bool
    position: int


class ProfileRecord(msgspec.Struct, frozen=True):
    id: str
    division_id: str
    name: str
    is_default: bool
    device_api_allow_read: bool
    device_api_allow_write: bool
    device_api_allow_renew_certificate: bool
    created: int
    updated: int
    fields: list[FieldRecord]


def profile_record(profile: DeviceProfile, fields: list[ProfileField]) -> ProfileRecord:
    return ProfileRecord(
        id=render_uuid(profile.id), division_id=render_uuid(profile.division_id),
        name=profile.name, is_default=profile.is_default,
        device_api_allow_read=profile.allow_read, device_api_allow_write=profile.allow_write,
        device_api_allow_renew_certificate=profile.allow_renew,
        created=profile.created_at, updated=profile.updated_at,
        fields=[
            FieldRecord(render_uuid(f.id), f.name, f.mandatory, f.position)
            for f in sorted(fields, key=lambda f: f.position)
        ],
    )  # fmt: skip


class DivisionRecord(msgspec.Struct, frozen=True):
    id: str
    name: str
    is_default: bool
    created: int
    updated: int


def division_record(division: Division) -> DivisionRecord:
    return DivisionRecord(
        render_uuid(division.id), division.name, division.is_default,
        division.created_at, division.updated_at,
    )  # fmt: skip


class AccountRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    name: str
    created: int
    api_version: str
    disabled_at: int | None = None  # omitted while enabled, as in entries made before it


def account_record(account: Account) -> AccountRecord:
    return AccountRecord(
        render_uuid(account.id), account.name, account.created_at, account.api_version,
        account.disabled_at,
    )  # fmt: skip


class ApiKeyRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """Not even the key's prefix: its characters are part of the secret. Not its last use
    either: that is not a change."""

    id: str
    live_mode: bool
    created: int
    revoked_at: int | None
    name: str
    scope: str
    expires_at: int | None
    rotated_from: str | None
    division_ids: list[str] | None = None  # None: every division (and records before them)


def api_key_record(key: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(
        render_uuid(key.id), key.live_mode, key.created_at, key.revoked_at, key.name,
        key.scope.value, key.expires_at,
        None if key.rotated_from is None else render_uuid(key.rotated_from),
        render_uuids(key.divisions),
    )  # fmt: skip


class EnrollmentSecretRecord(msgspec.Struct, frozen=True):
    """Never the secret nor its hash."""

    id: str
    device_id: str
    created: int
    expires_at: int
    state: str  # outstanding, used, revoked


def enrollment_secret_record(
    secret_id: bytes, device_id: bytes, created: int, expires_at: int, state: str
) -> EnrollmentSecretRecord:
    return EnrollmentSecretRecord(
        render_uuid(secret_id), render_uuid(device_id), created, expires_at, state
    )
