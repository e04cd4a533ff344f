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
    disabled_at: int | None = None  # its keys, tokens and certificates refused meanwhile


class Scope(StrEnum):
    """What an API key may do: `write` includes `read`."""

    READ = "read"
    WRITE = "write"


class ApiKey(msgspec.Struct, frozen=True):
    """A stored API key: only the SHA-256 of the secret is kept, never the secret."""

    id: bytes
    account_id: bytes
    live_mode: bool
    key_hash: bytes
    prefix: str  # `sk_live_` or `sk_test_` plus a few characters, to tell keys apart in a list
    created_at: int
    revoked_at: int | None = None
    name: str = "default"
    scope: Scope = Scope.WRITE
    expires_at: int | None = None
    last_used_at: int | None = None  # kept late on purpose: not a write per request
    rotated_from: bytes | None = None  # the key this one replaces
    # The divisions it is limited to (fixed when it is made); None: all of its account's
    divisions: frozenset[bytes] | None = None


class KeyStanding(msgspec.Struct, frozen=True):
    """A key with its account's state, read in one snapshot, tagged with the access mark's
    generation of that snapshot (auth/access_gate.py: how long a process may trust it)."""

    key: ApiKey
    account_disabled: bool
    generation: int


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


class ActorKind(StrEnum):
    """Who made a change, as the change log records it."""

    API_KEY = "api_key"  # dialect D's x-api-key: the key's id
    # dialect F's token: the id of the key it was made from
    BEARER_TOKEN = "bearer_token"  # noqa: S105
    DEVICE_CERTIFICATE = "device_certificate"  # a device over mTLS or EST: the certificate id
    # EST with a one-time secret: the secret's id
    ENROLLMENT_SECRET = "enrollment_secret"  # noqa: S105
    CLI = "cli"  # an operator's command: the OS user
    OPERATOR = "operator"  # a console user (core/operators.py): the user's id
    SYSTEM = "system"  # devreg itself (migrations, retention)


class Actor(msgspec.Struct, frozen=True):
    kind: ActorKind
    id: str  # never a secret: a key's or certificate's id (UUID), an OS user name


class Origin(msgspec.Struct, frozen=True):
    """What every change carries into the change log: who, and in which request."""

    actor: Actor
    request_id: str


def operator_origin(user: str, request_id: str) -> Origin:
    """A change made by an operator's command (`devreg …`)."""
    return Origin(Actor(ActorKind.CLI, user), request_id)


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    """Who is asking, as the core sees it: one account in one mode, through one credential,
    in one request. `actor.kind` says whether the device itself is calling."""

    account_id: bytes
    live_mode: bool
    credential_id: str  # stable, non-secret name of the credential, for limits and logs
    actor: Actor
    request_id: str
    api_version: str = DEFAULT_VERSION  # dialect F: the account's default, as of the token
    # The device itself: its record as checked when it authenticated (core/access.py)
    device: Device | None = None
    # The API key behind an x-api-key or a bearer token, and its scope as stored now
    # (never a token's claim): None and WRITE for the CLI, devices and devreg itself.
    key_id: bytes | None = None
    scope: Scope = Scope.WRITE
    # The divisions that key is limited to (core/reach.py); None: every division.
    divisions: frozenset[bytes] | None = None

    @property
    def origin(self) -> Origin:
        return Origin(self.actor, self.request_id)

    @property
    def is_device(self) -> bool:
        """The device itself (its certificate or its enrollment secret), not a back office."""
        return self.actor.kind in (ActorKind.DEVICE_CERTIFICATE, ActorKind.ENROLLMENT_SECRET)
