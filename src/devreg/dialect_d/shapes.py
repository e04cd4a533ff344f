"""Wire shapes of dialect D. Requests decode strictly; responses follow seed 003's 201."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from devreg.core.accounts import MAX_NAME
from devreg.core.api_keys import (
    DEFAULT_OVERLAP_HOURS,
    MAX_EXPIRES_IN_DAYS,
    MAX_KEY_DIVISIONS,
    MAX_OVERLAP_HOURS,
    key_status,
)
from devreg.core.clock import render_rfc3339
from devreg.core.devices import MAX_IDENTIFIER, DeviceView
from devreg.core.ids import render_uuid, render_uuids
from devreg.core.profiles import Profile
from devreg.core.records import ApiKey, Certificate, Division
from devreg.core.text import TEXT_PATTERN, TEXT_RULE

Uuid = Annotated[str, Meta(examples=["64c02969-3890-4da8-a5ef-b574fd72887e"])]
Name = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_NAME,
        # No pattern: the surrounding whitespace is dropped first, and some of it (tab,
        # newline, U+2028) is what the pattern would refuse.
        description=f"Surrounding whitespace is dropped first. {TEXT_RULE}",
    ),
]
Identifier = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_IDENTIFIER,
        description=f"Unique among the division's devices of one mode. {TEXT_RULE}",
        extra_json_schema={"pattern": TEXT_PATTERN},
    ),
]
Value = Annotated[str, Meta(max_length=1024)]


# --- requests


class DivisionIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name


class FieldDefinitionIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    mandatory: bool = False


class ProfileIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    division_id: Uuid | UnsetType = UNSET
    fields: list[FieldDefinitionIn] = []
    device_api_allow_read: bool = True
    device_api_allow_write: bool = True
    device_api_allow_renew_certificate: bool = True


class FieldDefinitionUpdateIn(msgspec.Struct, forbid_unknown_fields=True):
    """A field of the updated profile: with `id` an existing field (kept, perhaps renamed),
    without one a new field."""

    name: Name
    mandatory: bool = False
    id: Uuid | UnsetType = UNSET


class ProfileUpdateIn(msgspec.Struct, forbid_unknown_fields=True):
    """Only what is given changes; `fields`, when given, is the complete new list."""

    name: Name | UnsetType = UNSET
    fields: list[FieldDefinitionUpdateIn] | UnsetType = UNSET
    device_api_allow_read: bool | UnsetType = UNSET
    device_api_allow_write: bool | UnsetType = UNSET
    device_api_allow_renew_certificate: bool | UnsetType = UNSET


class FieldValueIn(msgspec.Struct, forbid_unknown_fields=True):
    id: Uuid
    value: Value


class DeviceIn(msgspec.Struct, forbid_unknown_fields=True):
    device_identifier: Identifier
    division_id: Uuid | UnsetType = UNSET
    device_profile_id: Uuid | UnsetType = UNSET
    fields: list[FieldValueIn] = []


class FieldValueUpdateIn(msgspec.Struct, forbid_unknown_fields=True):
    """A value, perhaps with the `name` and `mandatory` a GET showed beside it: sent back,
    they must still be the profile's (a field is renamed in its profile)."""

    id: Uuid
    value: Value
    name: str | UnsetType = UNSET
    mandatory: bool | UnsetType = UNSET


# The keys of the device object that the server sets: a client that PUTs back what it read
# sends them, and they are accepted (of the type GET shows) and ignored; any other unknown
# key is still refused.
_IGNORED = Meta(description="Read-only: accepted and ignored")
ReadOnlyText = Annotated[str, _IGNORED]
ReadOnlyRef = Annotated[dict[str, Any], _IGNORED]


# A device made in dialect F has no identifier, and GET shows it as "": sent back so, it
# stays without one (any other device refuses an empty identifier).
UpdatedIdentifier = Annotated[
    str,
    Meta(
        max_length=MAX_IDENTIFIER,
        description=f"Unique among the division's devices of one mode. {TEXT_RULE} Empty"
        " only for a device that has none (made in dialect F): it stays without one.",
        extra_json_schema={"pattern": TEXT_PATTERN},
    ),
]


class DeviceUpdateIn(msgspec.Struct, forbid_unknown_fields=True):
    """Seed 003's update: `fields` is destructive (omitted values are deleted). The device
    object as GET shows it is accepted too, so a client may change it and PUT it back."""

    device_identifier: UpdatedIdentifier | UnsetType = UNSET
    fields: list[FieldValueUpdateIn] = []
    device_api_allow_read: bool | UnsetType = UNSET
    device_api_allow_write: bool | UnsetType = UNSET
    device_api_allow_renew_certificate: bool | UnsetType = UNSET
    id: Annotated[Uuid | UnsetType, Meta(description="Must be the path's id")] = UNSET
    account_id: ReadOnlyText | UnsetType = UNSET
    division: ReadOnlyRef | UnsetType = UNSET
    device_profile: ReadOnlyRef | UnsetType = UNSET
    created: ReadOnlyText | UnsetType = UNSET
    updated: ReadOnlyText | UnsetType = UNSET
    status: ReadOnlyText | UnsetType = UNSET
    last_seen: ReadOnlyText | UnsetType | None = UNSET


class CertificateIn(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of: a PKCS#10 request, a key made by devreg, or (`pem`) a certificate
    from a configured client CA to register."""

    csr: str | UnsetType = UNSET
    generate_key: bool = False
    pem: str | UnsetType = UNSET


class RenewIn(msgspec.Struct, forbid_unknown_fields=True):
    csr: str


class RevokeIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[
        str, Meta(description="RFC 5280 reason: unspecified, keyCompromise, superseded, ...")
    ] = "unspecified"


# --- responses


class DivisionOut(msgspec.Struct):
    id: Uuid
    name: str


class ProfileRef(msgspec.Struct):
    id: Uuid
    name: str


class FieldDefinitionOut(msgspec.Struct):
    id: Uuid
    name: str
    mandatory: bool


class ProfileOut(msgspec.Struct):
    id: Uuid
    name: str
    division: DivisionOut
    fields: list[FieldDefinitionOut]
    device_api_allow_read: bool
    device_api_allow_write: bool
    device_api_allow_renew_certificate: bool


class FieldValueOut(msgspec.Struct):
    id: Uuid
    name: str
    value: str
    mandatory: bool


class DeviceDetails(msgspec.Struct):
    id: Uuid
    account_id: Uuid
    division: DivisionOut
    device_identifier: str
    device_profile: ProfileRef
    created: str
    updated: str
    status: str
    fields: list[FieldValueOut]
    device_api_allow_read: bool
    device_api_allow_write: bool
    device_api_allow_renew_certificate: bool
    last_seen: str | None


class DeviceListOut(msgspec.Struct):
    limit: int
    offset: int
    total: int
    records: list[DeviceDetails]


class DivisionListOut(msgspec.Struct):
    limit: int
    offset: int
    total: int
    records: list[DivisionOut]


class ProfileListOut(msgspec.Struct):
    limit: int
    offset: int
    total: int
    records: list[ProfileOut]


class CertificateOut(msgspec.Struct, omit_defaults=True):
    certificate_id: Uuid
    serial_number: str
    thumbprint: Annotated[str, Meta(description="SHA-256 of the DER, upper-case hex")]
    pem: str
    not_before: str
    not_after: str
    status: Annotated[str, Meta(description="ACTIVE, REVOKED or EXPIRED")]
    issuer: Annotated[str, Meta(description='"devreg", or the external CA\'s subject')]
    revoked_at: str | None
    revocation_reason: str | None
    issued_by: Annotated[
        str | None,
        Meta(
            description="The credential that authorised the issuance: api_key:<id>,"
            " certificate:<certificate id> (a re-enrollment or renewal by the device, revoked"
            " with that certificate for keyCompromise), enrollment_secret:<id>; null for"
            " certificates recorded before devreg kept it"
        ),
    ]
    private_key: str | UnsetType = UNSET


class RenewOut(msgspec.Struct):
    """Seed 003's renewal answer."""

    certificate_request_id: Uuid
    status: str
    result: str
    certificate_id: Uuid
    pem: str


class EnrollmentSecretOut(msgspec.Struct):
    """Shown once: the device enrolls over EST with HTTP Basic `<device id>:<secret>`."""

    secret: str
    expires_at: str


class EnrollmentSecretsRevokedOut(msgspec.Struct):
    revoked: Annotated[int, Meta(description="Outstanding secrets revoked (0 or 1)")]


class CertificateListOut(msgspec.Struct):
    limit: int
    offset: int
    total: int
    records: list[CertificateOut]


class RevokedCertificatesOut(msgspec.Struct):
    """The certificates one call revoked (all of them: no page)."""

    total: int
    records: list[CertificateOut]


class ErrorItem(msgspec.Struct):
    code: str
    message: str


class ErrorsOut(msgspec.Struct):
    errors: list[ErrorItem]


# --- rendering


def render_division(division: Division) -> DivisionOut:
    return DivisionOut(id=render_uuid(division.id), name=division.name)


def render_profile(profile: Profile) -> ProfileOut:
    p = profile.profile
    return ProfileOut(
        id=render_uuid(p.id),
        name=p.name,
        division=render_division(profile.division),
        fields=[
            FieldDefinitionOut(id=render_uuid(f.id), name=f.name, mandatory=f.mandatory)
            for f in profile.fields
        ],
        device_api_allow_read=p.allow_read,
        device_api_allow_write=p.allow_write,
        device_api_allow_renew_certificate=p.allow_renew,
    )


def render_device(view: DeviceView) -> DeviceDetails:
    device, profile = view.device, view.profile
    return DeviceDetails(
        id=render_uuid(device.id),
        account_id=render_uuid(device.account_id),
        division=render_division(profile.division),
        device_identifier=device.device_identifier or "",
        device_profile=ProfileRef(id=render_uuid(profile.profile.id), name=profile.profile.name),
        created=render_rfc3339(device.created_at),
        updated=render_rfc3339(device.updated_at),
        status=device.status.value,
        fields=[
            FieldValueOut(
                id=render_uuid(f.id), name=f.name, value=view.values[f.id], mandatory=f.mandatory
            )
            for f in profile.fields
            if f.id in view.values
        ],
        device_api_allow_read=device.allow_read,
        device_api_allow_write=device.allow_write,
        device_api_allow_renew_certificate=device.allow_renew,
        last_seen=None if device.last_seen is None else render_rfc3339(device.last_seen),
    )


def render_certificate(
    cert: Certificate, now: int, private_key: str | UnsetType = UNSET
) -> CertificateOut:
    if cert.revoked_at is not None:
        status = "REVOKED"
    elif cert.not_after <= now:
        status = "EXPIRED"
    else:
        status = "ACTIVE"
    return CertificateOut(
        certificate_id=render_uuid(cert.id),
        serial_number=cert.serial,
        thumbprint=cert.fingerprint.hex().upper(),
        pem=cert.pem,
        not_before=render_rfc3339(cert.not_before),
        not_after=render_rfc3339(cert.not_after),
        status=status,
        issuer=cert.issuer,
        revoked_at=None if cert.revoked_at is None else render_rfc3339(cert.revoked_at),
        revocation_reason=cert.revocation_reason,
        issued_by=cert.issued_by,
        private_key=private_key,
    )


# --- API keys (/iot/api/v2/api-key)


class ApiKeyIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    scope: Annotated[
        Literal["read", "write"], Meta(description="read: GET only; write: everything")
    ] = "write"
    expires_in_days: (
        Annotated[int, Meta(ge=1, le=MAX_EXPIRES_IN_DAYS, description="None sent: never")]
        | UnsetType
    ) = UNSET
    division_ids: (
        Annotated[
            list[Uuid],
            Meta(
                min_length=1,
                max_length=MAX_KEY_DIVISIONS,
                description="Limit the key to these divisions' devices, profiles and"
                " certificates (none sent: all of them)",
            ),
        ]
        | UnsetType
    ) = UNSET


class RotateIn(msgspec.Struct, forbid_unknown_fields=True):
    overlap_hours: Annotated[
        float,
        Meta(
            ge=0,
            le=MAX_OVERLAP_HOURS,
            description="How long the old key keeps working; 0: revoked at once",
        ),
    ] = DEFAULT_OVERLAP_HOURS


class ApiKeyOut(msgspec.Struct):
    """Never the secret nor its hash: `prefix` tells keys apart."""

    id: Uuid
    name: str
    mode: Literal["live", "test"]
    scope: Literal["read", "write"]
    prefix: str
    status: Literal["ACTIVE", "EXPIRED", "REVOKED"]
    created: str
    last_used: Annotated[str | None, Meta(description="Up to a minute late")]
    expires_at: str | None
    revoked_at: str | None
    rotated_from: Uuid | None
    division_ids: Annotated[list[Uuid] | None, Meta(description="None: every division")]


class ApiKeyCreatedOut(msgspec.Struct):
    """The only answer that holds the secret."""

    secret: str
    key: ApiKeyOut
    replaces: Uuid | None = None  # a rotation: the key it replaces


class ApiKeyListOut(msgspec.Struct):
    limit: int
    offset: int
    total: int
    records: list[ApiKeyOut]


def _time_or_none(us: int | None) -> str | None:
    return None if us is None else render_rfc3339(us)


def render_api_key(key: ApiKey, now: int) -> ApiKeyOut:
    return ApiKeyOut(
        id=render_uuid(key.id), name=key.name, mode="live" if key.live_mode else "test",
        scope=key.scope.value, prefix=key.prefix,
        status=key_status(key, now).value,
        created=render_rfc3339(key.created_at), last_used=_time_or_none(key.last_used_at),
        expires_at=_time_or_none(key.expires_at), revoked_at=_time_or_none(key.revoked_at),
        rotated_from=None if key.rotated_from is None else render_uuid(key.rotated_from),
        division_ids=render_uuids(key.divisions),
    )  # fmt: skip
