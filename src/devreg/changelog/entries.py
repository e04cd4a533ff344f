"""What a change log entry is: the change a store write describes, and the entry as stored."""

from __future__ import annotations

from enum import StrEnum

import msgspec

from devreg.core.records import ActorKind


class ObjectType(StrEnum):
    ACCOUNT = "account"
    API_KEY = "api_key"
    DIVISION = "division"
    PROFILE = "device_profile"
    DEVICE = "device"
    CERTIFICATE = "certificate"
    ENROLLMENT_SECRET = "enrollment_secret"  # noqa: S105 (a name, not a secret)
    OPERATOR = "operator"
    OPERATOR_SESSION = "operator_session"


class Action(StrEnum):
    """`<object>.<verb>`: the events of issue 17 take these names."""

    ACCOUNT_CREATE = "account.create"
    ACCOUNT_UPDATE = "account.update"
    ACCOUNT_DISABLE = "account.disable"
    ACCOUNT_ENABLE = "account.enable"
    API_KEY_CREATE = "api_key.create"
    API_KEY_REVOKE = "api_key.revoke"
    API_KEY_ROTATE = "api_key.rotate"  # the old key, now set to expire; the new one is a create
    DIVISION_CREATE = "division.create"
    PROFILE_CREATE = "device_profile.create"
    PROFILE_UPDATE = "device_profile.update"
    DEVICE_CREATE = "device.create"
    DEVICE_IMPORT = "device.import"
    DEVICE_UPDATE = "device.update"
    DEVICE_DISABLE = "device.disable"
    DEVICE_ENABLE = "device.enable"
    DEVICE_DELETE = "device.delete"
    DEVICE_RESTORE = "device.restore"
    CERTIFICATE_ISSUE = "certificate.issue"
    CERTIFICATE_RENEW = "certificate.renew"
    CERTIFICATE_REGISTER = "certificate.register"
    CERTIFICATE_ENROLL = "certificate.enroll"
    CERTIFICATE_REVOKE = "certificate.revoke"
    SECRET_CREATE = "enrollment_secret.create"  # noqa: S105
    SECRET_REVOKE = "enrollment_secret.revoke"  # noqa: S105
    SECRET_USE = "enrollment_secret.use"  # noqa: S105
    OPERATOR_CREATE = "operator.create"
    OPERATOR_DISABLE = "operator.disable"
    OPERATOR_ENABLE = "operator.enable"
    OPERATOR_SET_PASSWORD = "operator.set_password"  # noqa: S105
    OPERATOR_TOTP_ENROLL = "operator.totp_enroll"
    OPERATOR_TOTP_REMOVE = "operator.totp_remove"
    OPERATOR_SESSION_CREATE = "operator_session.create"  # a sign-in
    OPERATOR_SESSION_REVOKE = "operator_session.revoke"


class Change(msgspec.Struct, frozen=True):
    """One record's change, as the store that wrote it describes it to the log. `before`
    and `after` are whole records (changelog/records.py), None before a create."""

    action: Action
    object_type: ObjectType
    object_id: bytes
    account_id: bytes | None
    live_mode: bool | None  # None: the object is shared by both modes (profiles, divisions)
    version: int | None  # the object's version, where it has one (devices)
    before: msgspec.Struct | None
    after: msgspec.Struct | None


class Entry(msgspec.Struct, frozen=True):
    """An entry as stored: `before` and `after` are the records' JSON text, exactly as
    hashed."""

    seq: int
    time: int  # µs; never less than the previous entry's
    account_id: bytes | None
    live_mode: bool | None
    actor_kind: ActorKind
    actor_id: str
    request_id: str
    action: str
    object_type: str
    object_id: bytes
    object_version: int | None
    before: str | None
    after: str | None
    prev_hash: bytes
    hash: bytes


class Head(msgspec.Struct, frozen=True):
    """The chain's last entry, and where pruning stopped."""

    seq: int
    time: int
    hash: bytes
    pruned_seq: int
    pruned_hash: bytes
