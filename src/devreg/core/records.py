"""The records the core works on. Plain immutable values; the stores build and read them."""

from __future__ import annotations

from enum import StrEnum

import msgspec

from devreg.core.versions import DEFAULT_VERSION


class DeviceStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"
    DELETED = "DELETED"


class Account(msgspec.Struct, frozen=True):
    id: bytes
    name: str
    created_at: int
    api_version: str = DEFAULT_VERSION  # dialect F's default for this account


class ApiKey(msgspec.Struct, frozen=True):
    """A stored API key: only the SHA-256 of the secret is kept, never the secret."""

    id: bytes
    account_id: bytes
    live_mode: bool
    key_hash: bytes
    prefix: str  # `sk_live_` or `sk_test_` plus a few characters, to tell keys apart in a list
    created_at: int
    revoked_at: int | None = None


class Division(msgspec.Struct, frozen=True):
    id: bytes
    account_id: bytes
    name: str
    is_default: bool
    created_at: int
    updated_at: int


class ProfileField(msgspec.Struct, frozen=True):
    id: bytes
    profile_id: bytes
    name: str
    mandatory: bool
    position: int


class DeviceProfile(msgspec.Struct, frozen=True):
    id: bytes
    account_id: bytes
    division_id: bytes
    name: str
    is_default: bool
    allow_read: bool
    allow_write: bool
    allow_renew: bool
    created_at: int
    updated_at: int


class Device(msgspec.Struct, frozen=True):
    id: bytes
    account_id: bytes
    live_mode: bool
    reference_id: str | None
    device_identifier: str | None
    division_id: bytes
    profile_id: bytes
    status: DeviceStatus
    allow_read: bool
    allow_write: bool
    allow_renew: bool
    last_seen: int | None
    created_at: int
    updated_at: int
    version: int


class Certificate(msgspec.Struct, frozen=True):
    id: bytes
    account_id: bytes
    device_id: bytes
    serial: str
    fingerprint: bytes  # SHA-256 of the DER
    public_key_hash: bytes  # SHA-256 of the SubjectPublicKeyInfo: one key, one device
    pem: str
    not_before: int
    not_after: int
    issuer: str  # "devreg" for our CA, else the external CA's subject
    created_at: int
    revoked_at: int | None = None
    revocation_reason: str | None = None
    # The credential that authorised the issuance ("api_key:<uuid>", "certificate:<uuid>",
    # "enrollment_secret:<uuid>", "operator"); None for certificates older than the record.
    issued_by: str | None = None
    # The certificate that authenticated a re-enrollment or renewal: revoking it for
    # keyCompromise revokes this one too.
    parent_id: bytes | None = None


class RevokedEntry(msgspec.Struct, frozen=True):
    """A CRL entry as stored: the certificate's id (the page key with `revoked_at`), its
    serial in hex, when and why it was revoked."""

    id: bytes
    serial: str
    revoked_at: int
    reason: str | None


class Caller(msgspec.Struct, frozen=True):
    """Who is asking, as the core sees it: one account in one mode, through one credential."""

    account_id: bytes
    live_mode: bool
    credential_id: str  # stable, non-secret name of the credential, for limits and logs
    api_version: str = DEFAULT_VERSION  # dialect F: the account's default, as of the token
