"""The storage interface the core uses. SqliteDeviceStore and PostgresDeviceStore implement it."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Literal, Protocol

import msgspec

from devreg.changelog.entries import Action
from devreg.core.errors import Unavailable
from devreg.core.records import (
    Account,
    ApiKey,
    Certificate,
    Device,
    DeviceProfile,
    DeviceStatus,
    Division,
    KeyStanding,
    Origin,
    ProfileField,
    RevokedEntry,
)


class DeviceChange(msgspec.Struct, frozen=True):
    """What an update writes to a device: each field left UNSET keeps its value. `values`
    (field id → value) replaces the device's field values whole."""

    reference_id: str | msgspec.UnsetType | None = msgspec.UNSET
    device_identifier: str | msgspec.UnsetType = msgspec.UNSET
    status: DeviceStatus | msgspec.UnsetType = msgspec.UNSET
    allow_read: bool | msgspec.UnsetType = msgspec.UNSET
    allow_write: bool | msgspec.UnsetType = msgspec.UNSET
    allow_renew: bool | msgspec.UnsetType = msgspec.UNSET
    last_seen: int | msgspec.UnsetType = msgspec.UNSET
    values: dict[bytes, str] | msgspec.UnsetType = msgspec.UNSET

    def columns(self) -> dict[str, object]:
        """The device columns set (their names are the fields'), values excluded."""
        return {
            name: value
            for name in DEVICE_CHANGE_COLUMNS
            if (value := getattr(self, name)) is not msgspec.UNSET
        }


DEVICE_CHANGE_COLUMNS = (
    "reference_id", "device_identifier", "status", "allow_read", "allow_write",
    "allow_renew", "last_seen",
)  # fmt: skip

ListDirection = Literal["older", "newer"]


class DuplicateValue(Exception):
    """A unique index refused a write; `field` is the record field that collided."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class MissingReference(Exception):
    """A row the write refers to (a profile field, a device) is gone: removed meanwhile."""


class OverLimit(Exception):
    """A capped count (a device's active certificates, an account's outstanding enrollment
    secrets) is already at its limit: nothing was written."""


class NotRotatable(Exception):
    """The key to rotate is revoked or expired, or was rotated already (it has a
    successor), as its row said under the lock: nothing was written."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class ParentRevoked(Exception):
    """The certificate that authorised an issuance was revoked (or expired) before the new
    one could be recorded: nothing was written."""


class StoreUnavailable(Unavailable):
    """The database cannot be reached (connection refused, server restarting)."""


# Seconds a client is told to wait after a write refused for lack of disk space: freeing
# space takes an operator, not the moment a lost connection takes to come back.
STORAGE_FULL_RETRY_AFTER = 30


class StorageFull(StoreUnavailable):
    """The database has no room for a write: its disk is full (SQLite SQLITE_FULL or ENOSPC,
    PostgreSQL SQLSTATE 53100). Nothing of the write was kept; reads go on, and writes
    succeed again once space is freed."""

    def __init__(self, detail: str) -> None:
        super().__init__("The database is out of disk space: nothing was written; retry later")
        self.detail = detail  # the driver's words, for the log only
        self.retry_after = STORAGE_FULL_RETRY_AFTER


class DeviceFilter(msgspec.Struct, frozen=True):
    """Dialect D's list filters; None means "any". Times are microseconds, inclusive."""

    device_identifier: str | None = None
    division_id: bytes | None = None
    profile_id: bytes | None = None
    created_from: int | None = None
    created_to: int | None = None
    updated_from: int | None = None
    updated_to: int | None = None
    # Any of these divisions (an API key's limit, core/reach.py; set by the core only)
    division_ids: frozenset[bytes] | None = None


class DeviceImport(Protocol):
    """The writes of one bulk import, all in one transaction: committed (durably) when the
    `bulk_import()` block ends normally, rolled back when it ends with an exception. Its
    lookups see the devices it has inserted so far."""

    async def taken_ids(self, ids: list[bytes]) -> set[bytes]:
        """Which of `ids` a stored device (any account, even deleted) has."""

    async def taken_references(
        self, account_id: bytes, live_mode: bool, references: list[str]
    ) -> dict[str, bytes]:
        """Which of `references` a non-deleted device of this account and mode holds, and
        that device's id."""

    async def taken_identifiers(
        self, division_id: bytes, live_mode: bool, identifiers: list[str]
    ) -> dict[str, bytes]:
        """Which of `identifiers` a non-deleted device of this division and mode holds."""

    async def count_devices(self, account_id: bytes, live_mode: bool) -> int:
        """The account's non-deleted devices in this mode, the import's so far included."""

    async def insert_devices_bulk(
        self, devices: list[Device], field_values: list[tuple[bytes, bytes, str]], origin: Origin
    ) -> None:
        """Insert the devices and their (device_id, field_id, value)s. Raises DuplicateValue
        or MissingReference; the transaction is then spoilt and must be left."""


class DeviceStore(Protocol):
    async def ping(self) -> None:
        """Raises StoreUnavailable when the database cannot answer."""

    def storage_full(self) -> bool:
        """Whether writes are being refused for lack of disk space: one was, less than
        STORAGE_FULL_RETRY_AFTER seconds ago, and writes have not been stored again since
        (storage/disk_full.py says when they count as stored again)."""

    # --- accounts and keys
    async def create_account(
        self,
        account: Account,
        keys: list[ApiKey],
        division: Division,
        profile: DeviceProfile,
        origin: Origin,
    ) -> None: ...

    async def find_api_key(self, key_hash: bytes) -> ApiKey | None:
        """The key with this secret's hash, with its divisions."""

    async def key_standing_by_hash(self, key_hash: bytes) -> KeyStanding | None:
        """The key with this secret's hash, its account's state and the access mark, in one
        snapshot (one statement)."""

    async def key_standing_by_id(self, key_id: bytes) -> KeyStanding | None:
        """As `key_standing_by_hash`, by the key's id (a bearer token names it)."""

    async def access_mark(self) -> int:
        """The access mark's generation: moves whenever a key's or an account's state
        changes in a way that may refuse a credential, in the same transaction. One row
        read."""
        ...

    async def access_snapshot(self) -> tuple[int, frozenset[bytes]]:
        """The access mark's generation and the disabled accounts, in one snapshot."""
        ...

    async def insert_api_key(self, key: ApiKey, at_most: int, now: int, origin: Origin) -> bool:
        """Stores a new key of an existing account, unless the account already holds
        `at_most` usable (unrevoked, unexpired at `now`) keys: then False."""
        ...

    async def api_keys(self, account_id: bytes) -> list[ApiKey]:
        """The account's keys, both modes, revoked ones too, oldest first."""
        ...

    async def api_key(self, key_id: bytes) -> ApiKey | None: ...

    async def revoke_api_key(
        self, key_id: bytes, at: int, origin: Origin
    ) -> tuple[bool, ApiKey] | None:
        """Revokes the key (whether that changed it, and the key now); None: no such key."""
        ...

    async def rotate_api_key(
        self, old_id: bytes, new: ApiKey, ends: int | None, at: int, at_most: int, origin: Origin
    ) -> ApiKey:
        """In one transaction, under the account's lock and the old key's: the old key set
        to expire at `ends` (never later than it already would; None: revoked at `at`) and
        `new` stored. The old key as it is now. NotRotatable if the old key is revoked,
        expired or already has a successor; OverLimit if the account holds `at_most`
        usable keys and the old one does not end now."""
        ...

    async def touch_api_keys(self, used: dict[bytes, int]) -> None:
        """Moves each key's last-used time forward to the time given (never back). Not a
        change: not in the change log, and the access mark stays."""
        ...

    async def account(self, account_id: bytes) -> Account | None: ...

    async def accounts(self) -> list[Account]:
        """Every account, oldest first."""
        ...

    async def set_account_disabled(
        self, account_id: bytes, at: int | None, origin: Origin
    ) -> tuple[bool, Account] | None:
        """Disables (at `at`) or enables (None) the account: whether that changed it, and
        the account now; None: no such account."""
        ...

    async def account_api_version(self, account_id: bytes) -> str | None:
        """The account's default dialect F version; None if there is no such account."""

    async def set_account_api_version(
        self, account_id: bytes, version: str, origin: Origin
    ) -> bool:
        """Whether the account exists (and now has `version` as its default)."""

    # --- divisions and profiles (per account, not per mode)
    async def insert_division(self, division: Division, origin: Origin) -> None:
        """Raises DuplicateValue("division_name")."""

    async def get_division(self, account_id: bytes, division_id: bytes) -> Division | None: ...

    async def list_divisions(
        self, account_id: bytes, *, limit: int | None = None, offset: int = 0
    ) -> list[Division]:
        """Oldest first; a page of them with `limit` (None: all)."""

    async def count_divisions(self, account_id: bytes) -> int: ...

    async def insert_profile(
        self, profile: DeviceProfile, fields: list[ProfileField], origin: Origin
    ) -> None:
        """Raises DuplicateValue("profile_name")."""

    async def get_profile(self, account_id: bytes, profile_id: bytes) -> DeviceProfile | None: ...

    async def update_profile(
        self,
        profile: DeviceProfile,
        fields: list[ProfileField],
        removed: list[bytes],
        origin: Origin,
    ) -> None:
        """Store `profile` (name, flags) with exactly `fields` (kept ones updated, new ones
        added) and delete the `removed` fields with every device's value for them, in one
        transaction. Raises DuplicateValue("profile_name" or "field_name")."""

    async def default_profile(self, account_id: bytes) -> DeviceProfile | None: ...

    async def list_profiles(
        self, account_id: bytes, *, limit: int | None = None, offset: int = 0
    ) -> list[DeviceProfile]:
        """Oldest first; a page of them with `limit` (None: all)."""

    async def count_profiles(self, account_id: bytes) -> int: ...

    async def profile_fields(self, profile_ids: list[bytes]) -> dict[bytes, list[ProfileField]]:
        """Each profile's fields in their declared order."""

    # --- devices
    async def insert_device(self, device: Device, values: dict[bytes, str], origin: Origin) -> None:
        """Raises DuplicateValue when reference_id or device_identifier is taken."""

    async def get_device(
        self, account_id: bytes, live_mode: bool, device_id: bytes, *, include_deleted: bool = False
    ) -> Device | None: ...

    async def get_device_by_id(self, device_id: bytes) -> Device | None:
        """A non-deleted device whatever its account: only for callers already authenticated
        as that device (by its certificate)."""

    async def list_devices(
        self,
        account_id: bytes,
        live_mode: bool,
        *,
        limit: int,
        reference_id: str | None = None,
        cursor: tuple[int, bytes] | None = None,
        direction: ListDirection = "older",
        division_ids: frozenset[bytes] | None = None,
    ) -> list[Device]:
        """Non-deleted devices, newest first. With a cursor (created_at, id), only those
        older (or newer) than it; the result is always ordered newest first. With
        `division_ids`, only devices in those divisions."""

    async def query_devices(
        self, account_id: bytes, live_mode: bool, where: DeviceFilter, *, limit: int, offset: int
    ) -> list[Device]:
        """A page of non-deleted devices matching `where`, oldest first."""

    async def query_device_ids(
        self, account_id: bytes, live_mode: bool, where: DeviceFilter, *, limit: int, offset: int
    ) -> list[bytes]:
        """The ids of query_devices' page, read from an index alone where one covers the
        filter: the rows are then fetched a batch at a time (devices_by_ids)."""

    async def devices_by_ids(
        self, account_id: bytes, live_mode: bool, device_ids: Sequence[bytes]
    ) -> list[Device]:
        """Those of `device_ids` that are non-deleted devices of this account and mode, in
        the order given."""

    async def count_devices(self, account_id: bytes, live_mode: bool) -> int:
        """Non-deleted devices of this account and mode, from the counter every insert and
        delete keeps in its own transaction: no scan."""

    async def count_matching(
        self, account_id: bytes, live_mode: bool, where: DeviceFilter, *, at_most: int
    ) -> int:
        """How many non-deleted devices match `where`, counting no further than `at_most`."""

    async def field_values(self, device_ids: list[bytes]) -> dict[bytes, dict[bytes, str]]:
        """Each device's values by field id (devices without values are absent)."""

    async def update_device(
        self,
        account_id: bytes,
        live_mode: bool,
        device_id: bytes,
        change: DeviceChange,
        now: int,
        origin: Origin,
        action: Action,
        *,
        writable_only: bool = False,
        revoke_reason: str | None = None,
    ) -> Device | None:
        """Write `change` to a non-deleted device, bump its version and updated_at, log
        it as `action`, and return the new record (None when there is no such device).
        With `revoke_reason`, its certificates are revoked in the same transaction (a
        delete, status DELETED, also leaves the counter and revokes its outstanding
        enrollment secret there). `writable_only`: only while the device is ACTIVE with
        allow_write. Raises DuplicateValue, MissingReference."""

    async def restore_device(
        self,
        account_id: bytes,
        live_mode: bool,
        device_id: bytes,
        now: int,
        revoke_reason: str,
        origin: Origin,
    ) -> Device | None:
        """A deleted device made ACTIVE again, counted again, in one transaction; None when
        there is no deleted device of that id. Every certificate and enrollment secret of
        it still unrevoked is revoked (`revoke_reason`) in that transaction: one issued
        while the delete committed was never revoked by it. Raises DuplicateValue when its
        identifier or reference is taken meanwhile."""

    async def touch_last_seen(self, device_id: bytes, now: int) -> None: ...

    # --- bulk import and export
    def bulk_import(self) -> AbstractAsyncContextManager[DeviceImport]: ...

    async def devices_oldest_first(
        self, account_id: bytes, live_mode: bool, *, after: tuple[int, bytes] | None, limit: int
    ) -> list[Device]:
        """Up to `limit` non-deleted devices of this account and mode, oldest first, after
        the (created_at, id) cursor when one is given: keyset pages for an export."""

    # --- certificates
    async def insert_certificate(
        self,
        certificate: Certificate,
        origin: Origin,
        action: Action,
        *,
        max_active: int | None = None,
    ) -> None:
        """Raises DuplicateValue("public_key") when another device holds its key, OverLimit
        when the device already holds `max_active` unrevoked, unexpired certificates
        (counted in the same transaction as the insert)."""

    async def count_active_certificates(self, device_id: bytes, now: int) -> int:
        """The device's unrevoked certificates valid after `now`."""

    async def list_certificates(
        self, account_id: bytes, device_id: bytes, *, limit: int | None = None, offset: int = 0
    ) -> list[Certificate]:
        """Oldest first; a page of them with `limit` (None: all)."""

    async def count_certificates(self, account_id: bytes, device_id: bytes) -> int: ...

    async def find_certificate(self, fingerprint: bytes) -> Certificate | None: ...

    async def get_certificate(
        self, account_id: bytes, live_mode: bool, cert_id: bytes
    ) -> Certificate | None:
        """A certificate of a device (deleted or not) of this account and mode."""

    async def revoke_certificate(
        self,
        account_id: bytes,
        live_mode: bool,
        cert_id: bytes,
        reason: str,
        now: int,
        origin: Origin,
    ) -> Certificate | None:
        """Mark an unrevoked certificate of a device of this account and mode revoked; None
        when there is none to revoke."""

    async def revoke_with_minted(
        self,
        account_id: bytes,
        live_mode: bool,
        cert_id: bytes,
        reason: str,
        now: int,
        origin: Origin,
    ) -> tuple[Certificate, list[Certificate]] | None:
        """In one transaction: revoke the caller's certificate (kept as it is when already
        revoked) and every certificate it minted, transitively (`parent_id`), for `reason`.
        The certificate as it now is and those newly revoked; None when it is not the
        caller's."""

    async def revoke_all_certificates(
        self, account_id: bytes, device_id: bytes, reason: str, now: int, origin: Origin
    ) -> list[Certificate]:
        """Revoke every unrevoked certificate of the account's device; those revoked now."""

    async def revoked_page(
        self, now: int, after: tuple[int, bytes] | None, limit: int
    ) -> list[RevokedEntry]:
        """Up to `limit` devreg-issued, revoked, unexpired certificates in (revoked_at, id)
        order, after the key `after` (None: from the first). Reads only revoked ones."""

    async def revocation_mark(self) -> tuple[int, int | None]:
        """(generation, latest revoked_at): moves whenever a certificate's revocation
        changes, in the same transaction as the change. One row read."""

    async def insert_enrollment_secret(
        self,
        secret_id: bytes,
        device: Device,
        secret_hash: bytes,
        now: int,
        expires_at: int,
        origin: Origin,
        *,
        max_outstanding: int,
    ) -> int:
        """In one transaction: revoke the device's outstanding secrets (the new one replaces
        them; returns how many), then insert the new one unless the account already has
        `max_outstanding` outstanding secrets (OverLimit, and nothing changes)."""

    async def revoke_enrollment_secrets(self, device: Device, now: int, origin: Origin) -> int:
        """Revoke the device's outstanding secrets; how many there were."""

    async def enrollment_secret_valid(
        self, device_id: bytes, secret_hash: bytes, now: int
    ) -> bytes | None:
        """The id of the device's outstanding secret with this hash (None: there is none),
        without spending it."""

    async def consume_enrollment_secret(
        self, device: Device, secret_hash: bytes, now: int, origin: Origin
    ) -> bytes | None:
        """Use the device's outstanding secret with this hash, once: its id if it was."""

    async def key_holders(self, public_key_hash: bytes) -> set[bytes]:
        """Ids of the devices holding a certificate for this public key."""

    async def close(self) -> None: ...
