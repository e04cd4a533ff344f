"""SQL shared by both stores, written with `?` placeholders; PostgreSQL gets them numbered.

Keeping one text per statement means the two backends cannot drift apart: the only
differences live in the migrations (types) and in how each driver is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from devreg.changelog.store import EntryFilter
from devreg.core.records import (
    Account,
    ApiKey,
    Certificate,
    Device,
    DeviceProfile,
    DeviceStatus,
    Division,
    ProfileField,
    Scope,
)
from devreg.core.store import DeviceChange, DeviceFilter

DEVICE_COLUMNS = (
    "id, account_id, live_mode, reference_id, device_identifier, division_id, profile_id,"
    " status, allow_read, allow_write, allow_renew, last_seen, created_at, updated_at, version"
)
PROFILE_COLUMNS = (
    "id, account_id, division_id, name, is_default, allow_read, allow_write, allow_renew,"
    " created_at, updated_at"
)

INSERT_ACCOUNT = (
    "INSERT INTO accounts (id, name, created_at, api_version, disabled_at) VALUES (?, ?, ?, ?, ?)"
)
SELECT_ACCOUNT_VERSION = "SELECT api_version FROM accounts WHERE id = ?"
SELECT_ACCOUNT = "SELECT id, name, created_at, api_version, disabled_at FROM accounts WHERE id = ?"
UPDATE_ACCOUNT_VERSION = "UPDATE accounts SET api_version = ? WHERE id = ? RETURNING id"
KEY_COLUMNS = (
    "id, account_id, live_mode, key_hash, prefix, created_at, revoked_at, name, scope,"
    " expires_at, last_used_at, rotated_from"
)
INSERT_API_KEY = f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# Moved by triggers (migration 0008) whenever a key's or an account's state changes in a
# way that may refuse a credential some process holds verified.
SELECT_ACCESS_MARK = "SELECT generation FROM access_mark WHERE id = 1"
# A key with its account's state and the access mark, in one statement's snapshot: what
# every credential check needs, and the generation it was read under (auth/access_gate.py).
_KEY_STANDING = (
    "SELECT " + ", ".join("k." + column.strip() for column in KEY_COLUMNS.split(","))
    + ", a.disabled_at, m.generation, d.division_id FROM api_keys k"
    " JOIN accounts a ON a.id = k.account_id JOIN access_mark m ON m.id = 1"
    " LEFT JOIN api_key_divisions d ON d.key_id = k.id"
)  # fmt: skip
SELECT_KEY_STANDING_BY_HASH = _KEY_STANDING + " WHERE k.key_hash = ?"
SELECT_KEY_STANDING_BY_ID = _KEY_STANDING + " WHERE k.id = ?"
# The mark and the disabled accounts as of one snapshot (a row with a NULL id: none).
SELECT_ACCESS_SNAPSHOT = (
    "SELECT m.generation, a.id FROM access_mark m"
    " LEFT JOIN accounts a ON a.disabled_at IS NOT NULL WHERE m.id = 1"
)
# A limited key's divisions (a row each; none: the key reaches every division).
INSERT_KEY_DIVISION = "INSERT INTO api_key_divisions (key_id, division_id) VALUES (?, ?)"
SELECT_KEY_DIVISIONS = "SELECT key_id, division_id FROM api_key_divisions WHERE key_id = ?"
SELECT_ACCOUNT_KEY_DIVISIONS = (
    "SELECT d.key_id, d.division_id FROM api_key_divisions d"
    " JOIN api_keys k ON k.id = d.key_id WHERE k.account_id = ?"
)
SELECT_API_KEY_BY_ID = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?"
LOCK_API_KEY_BY_ID = SELECT_API_KEY_BY_ID + " FOR NO KEY UPDATE"
SELECT_ACCOUNT_KEYS = (
    f"SELECT {KEY_COLUMNS} FROM api_keys WHERE account_id = ? ORDER BY created_at, id"
)
COUNT_LIVE_ACCOUNT_KEYS = (
    "SELECT COUNT(*) FROM api_keys WHERE account_id = ? AND revoked_at IS NULL"
    " AND (expires_at IS NULL OR expires_at > ?)"
)
HAS_SUCCESSOR = "SELECT 1 FROM api_keys WHERE account_id = ? AND rotated_from = ? LIMIT 1"
REVOKE_API_KEY = "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
EXPIRE_API_KEY = "UPDATE api_keys SET expires_at = ? WHERE id = ? AND revoked_at IS NULL"
# Every process flushes the times it saw: the latest wins, whatever order they come in.
TOUCH_API_KEY = (
    "UPDATE api_keys SET last_used_at = ? WHERE id = ?"
    " AND (last_used_at IS NULL OR last_used_at < ?)"
)
SELECT_ACCOUNTS = (
    "SELECT id, name, created_at, api_version, disabled_at FROM accounts ORDER BY created_at, id"
)
LOCK_ACCOUNT_ROW = SELECT_ACCOUNT + " FOR NO KEY UPDATE"
SET_ACCOUNT_DISABLED = "UPDATE accounts SET disabled_at = ? WHERE id = ?"
INSERT_DIVISION = (
    "INSERT INTO divisions (id, account_id, name, is_default, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
INSERT_PROFILE = (
    f"INSERT INTO device_profiles ({PROFILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_DEVICE = (
    f"INSERT INTO devices ({DEVICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_DEFAULT_PROFILE = (
    f"SELECT {PROFILE_COLUMNS} FROM device_profiles WHERE account_id = ? AND is_default"
)
SELECT_DEVICE = (
    f"SELECT {DEVICE_COLUMNS} FROM devices"
    " WHERE id = ? AND account_id = ? AND live_mode = ? AND status <> 'DELETED'"
)
SELECT_DEVICE_ANY_STATUS = (
    f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ? AND account_id = ? AND live_mode = ?"
)
_LIST_HEAD = (
    f"SELECT {DEVICE_COLUMNS} FROM devices"
    " WHERE account_id = ? AND live_mode = ? AND status <> 'DELETED'"
)
_BY_REFERENCE = " AND reference_id = ?"
_OLDER = " AND (created_at, id) < (?, ?)"
_NEWER = " AND (created_at, id) > (?, ?)"
_NEWEST_FIRST = " ORDER BY created_at DESC, id DESC LIMIT ?"
_OLDEST_FIRST = " ORDER BY created_at ASC, id ASC LIMIT ?"
SELECT_HEALTH = "SELECT 1"

DIVISION_COLUMNS = "id, account_id, name, is_default, created_at, updated_at"
FIELD_COLUMNS = "id, profile_id, name, mandatory, position"
CERTIFICATE_COLUMNS = (
    "id, account_id, device_id, serial, fingerprint, public_key_hash, pem, not_before,"
    " not_after, issuer, created_at, revoked_at, revocation_reason, issued_by, parent_id"
)
SELECT_DIVISION = f"SELECT {DIVISION_COLUMNS} FROM divisions WHERE account_id = ? AND id = ?"
SELECT_DIVISIONS = (
    f"SELECT {DIVISION_COLUMNS} FROM divisions WHERE account_id = ? ORDER BY created_at, id"
)
COUNT_DIVISIONS = "SELECT COUNT(*) FROM divisions WHERE account_id = ?"
SELECT_PROFILE = f"SELECT {PROFILE_COLUMNS} FROM device_profiles WHERE account_id = ? AND id = ?"
# The same, the row locked first (PostgreSQL only: see LOCK_ANY_DEVICES_BY_IDS).
LOCK_PROFILE = SELECT_PROFILE + " FOR NO KEY UPDATE"
SELECT_PROFILES = (
    f"SELECT {PROFILE_COLUMNS} FROM device_profiles WHERE account_id = ? ORDER BY created_at, id"
)
COUNT_PROFILES = "SELECT COUNT(*) FROM device_profiles WHERE account_id = ?"
PAGE = " LIMIT ? OFFSET ?"
INSERT_FIELD = f"INSERT INTO profile_fields ({FIELD_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
UPDATE_PROFILE = (
    "UPDATE device_profiles SET name = ?, allow_read = ?, allow_write = ?, allow_renew = ?,"
    " updated_at = ? WHERE account_id = ? AND id = ?"
)
UPDATE_FIELD = "UPDATE profile_fields SET name = ?, mandatory = ?, position = ? WHERE id = ?"
# Renames within one profile may swap names: every kept field is first parked on a name no
# user name can have (names never start with a space), so the (profile_id, name) index
# never sees two fields with one name.
PARK_FIELD = "UPDATE profile_fields SET name = ? WHERE id = ?"
DELETE_FIELD_VALUES = "DELETE FROM device_field_values WHERE field_id = ?"
DELETE_FIELD = "DELETE FROM profile_fields WHERE id = ?"
INSERT_VALUE = "INSERT INTO device_field_values (device_id, field_id, value) VALUES (?, ?, ?)"
DELETE_VALUES = "DELETE FROM device_field_values WHERE device_id = ?"
SELECT_ANY_DEVICES_BY_IDS = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id IN (?)"
# The same, each row locked first (it waits for another transaction's write to that
# device to commit, then reads what it wrote): the state a write's log entry names as its
# `before` must be the one it replaces. PostgreSQL only (FOR UPDATE): on SQLite a write
# holds the database's write lock already (SqlDeviceStore.serialized_writes).
# NO KEY: the lock an UPDATE of the row takes, which a foreign key's check (a value or a
# secret inserted for the device) does not wait for.
LOCK_ANY_DEVICES_BY_IDS = SELECT_ANY_DEVICES_BY_IDS + " FOR NO KEY UPDATE"
SELECT_DEVICE_BY_ID = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ? AND status <> 'DELETED'"
TOUCH_LAST_SEEN = "UPDATE devices SET last_seen = ? WHERE id = ? AND status <> 'DELETED'"
INSERT_CERTIFICATE = (
    f"INSERT INTO certificates ({CERTIFICATE_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_CERTIFICATES = (
    f"SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE account_id = ? AND device_id = ?"
    " ORDER BY created_at, id"
)
COUNT_CERTIFICATES = "SELECT COUNT(*) FROM certificates WHERE account_id = ? AND device_id = ?"
SELECT_CERTIFICATE = f"SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE fingerprint = ?"
# A certificate is the caller's when its device is of the caller's account and mode (the
# device may be deleted: its certificates stay, revoked).
_CERTIFICATE_OF_CALLER = (
    "account_id = ? AND id = ?"
    " AND device_id IN (SELECT id FROM devices WHERE account_id = ? AND live_mode = ?)"
)
SELECT_CERTIFICATE_BY_ID = (
    f"SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE {_CERTIFICATE_OF_CALLER}"
)
REVOKE_CERTIFICATE = (
    "UPDATE certificates SET revoked_at = ?, revocation_reason = ?"
    f" WHERE {_CERTIFICATE_OF_CALLER} AND revoked_at IS NULL RETURNING {CERTIFICATE_COLUMNS}"
)
DEVICES_WITH_FIELD = "SELECT device_id FROM device_field_values WHERE field_id = ?"
BUMP_DEVICES_WITH_FIELD = (
    "UPDATE devices SET version = version + 1, updated_at = ?"
    " WHERE id IN (SELECT device_id FROM device_field_values WHERE field_id = ?)"
)
REVOKE_DEVICE_CERTIFICATES = (
    "UPDATE certificates SET revoked_at = ?, revocation_reason = ?"
    f" WHERE device_id = ? AND revoked_at IS NULL RETURNING {CERTIFICATE_COLUMNS}"
)
# The CRL's entries, a page at a time in (revoked_at, id) order after a given key, from the
# covering partial index certificates_revoked alone: neither the unrevoked certificates nor
# the pages before are read again.
SELECT_REVOKED_PAGE = (
    "SELECT id, serial, revoked_at, revocation_reason FROM certificates"
    " WHERE revoked_at IS NOT NULL AND (revoked_at, id) > (?, ?)"
    " AND issuer = 'devreg' AND not_after > ?"
    " ORDER BY revoked_at, id LIMIT ?"
)
# Serialises the capped inserts of one account or device (a row lock on PostgreSQL; SQLite
# has one writer anyway) without changing the row.
LOCK_ACCOUNT = "UPDATE accounts SET name = name WHERE id = ?"
LOCK_DEVICE_RETURNING = "UPDATE devices SET version = version WHERE id = ? RETURNING live_mode"
# The certificate that authorised an issuance, locked (a PostgreSQL row lock waits for a
# revocation in progress to commit) and read as it now is; not a revocation change, so the
# revocation mark's triggers do not fire.
LOCK_PARENT_CERTIFICATE = (
    "UPDATE certificates SET not_after = not_after WHERE id = ? RETURNING revoked_at, not_after"
)
COUNT_ACTIVE_CERTIFICATES = (
    "SELECT COUNT(*) FROM certificates WHERE device_id = ? AND revoked_at IS NULL AND not_after > ?"
)
# Everything a certificate minted (re-enrollments and renewals it authenticated), and what
# those minted, transitively.
REVOKE_MINTED = (
    "WITH RECURSIVE minted (id) AS ("
    " SELECT id FROM certificates WHERE parent_id = ?"
    " UNION SELECT c.id FROM certificates c JOIN minted m ON c.parent_id = m.id)"
    " UPDATE certificates SET revoked_at = ?, revocation_reason = ?"
    f" WHERE id IN (SELECT id FROM minted) AND revoked_at IS NULL RETURNING {CERTIFICATE_COLUMNS}"
)
REVOKE_ALL_OF_DEVICE = (
    "UPDATE certificates SET revoked_at = ?, revocation_reason = ?"
    " WHERE account_id = ? AND device_id = ? AND revoked_at IS NULL"
    f" RETURNING {CERTIFICATE_COLUMNS}"
)
_OUTSTANDING = "used_at IS NULL AND revoked_at IS NULL AND expires_at > ?"
# One row, moved by triggers whenever a certificate's revocation changes (migration 0003).
SELECT_REVOCATION_MARK = "SELECT generation, latest_revoked_at FROM revocation_mark WHERE id = 1"
INSERT_ENROLLMENT = (
    "INSERT INTO enrollment_secrets"
    " (id, account_id, device_id, secret_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)"
)
COUNT_OUTSTANDING_ENROLLMENTS = (
    f"SELECT COUNT(*) FROM enrollment_secrets WHERE account_id = ? AND {_OUTSTANDING}"
)
ENROLLMENT_COLUMNS = "id, device_id, created_at, expires_at"
REVOKE_ENROLLMENTS = (
    "UPDATE enrollment_secrets SET revoked_at = ?"
    f" WHERE device_id = ? AND {_OUTSTANDING} RETURNING {ENROLLMENT_COLUMNS}"
)
FIND_ENROLLMENT = (
    f"SELECT id FROM enrollment_secrets WHERE device_id = ? AND secret_hash = ? AND {_OUTSTANDING}"
)
CONSUME_ENROLLMENT = (
    "UPDATE enrollment_secrets SET used_at = ?"
    f" WHERE device_id = ? AND secret_hash = ? AND {_OUTSTANDING} RETURNING {ENROLLMENT_COLUMNS}"
)
# The change log (migration 0007). A write takes the next `count` numbers from the head
# (on PostgreSQL its row lock, held to the commit, orders the writers), appends its entries
# and moves the head's time and hash to its last entry. A group-commit batch does this once,
# for all its writes, just before its COMMIT (storage/batch.py).
CHANGE_COLUMNS = (
    "seq, time, account_id, live_mode, actor_kind, actor_id, request_id, action,"
    " object_type, object_id, object_version, before, after, prev_hash, hash"
)
TAKE_CHANGE_SEQ = "UPDATE change_head SET seq = seq + ? WHERE one = 1 RETURNING seq, time, hash"
INSERT_CHANGE = (
    f"INSERT INTO change_log ({CHANGE_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
MOVE_CHANGE_HEAD = "UPDATE change_head SET time = ?, hash = ? WHERE one = 1"
SELECT_CHANGE_HEAD = (
    "SELECT seq, time, hash, pruned_seq, pruned_hash FROM change_head WHERE one = 1"
)
# A history page: its seqs walked in change_log_object alone (the index covers object_id,
# time, seq: a deep OFFSET skips index entries, never rows), then only those rows read
# by seq, in one statement or a batch at a time.
SELECT_OBJECT_HISTORY_SEQS = (
    "SELECT seq FROM change_log WHERE object_id = ? ORDER BY time DESC, seq DESC LIMIT ? OFFSET ?"
)
SELECT_OBJECT_HISTORY = (
    f"SELECT {CHANGE_COLUMNS} FROM change_log WHERE seq IN ({SELECT_OBJECT_HISTORY_SEQS})"
    " ORDER BY time DESC, seq DESC"
)
SELECT_CHANGES_BY_SEQS = f"SELECT {CHANGE_COLUMNS} FROM change_log WHERE seq IN (?)"
COUNT_OBJECT_HISTORY = "SELECT COUNT(*) FROM change_log WHERE object_id = ?"
# The object's last entry at or before a time: one seek backwards in change_log_object
# (time never goes back as seq grows, so (time, seq) is the log's order).
SELECT_OBJECT_AS_OF = (
    f"SELECT {CHANGE_COLUMNS} FROM change_log WHERE object_id = ? AND time <= ?"
    " ORDER BY time DESC, seq DESC LIMIT 1"
)
SELECT_OBJECT_NEXT = (
    f"SELECT {CHANGE_COLUMNS} FROM change_log WHERE object_id = ? AND time > ?"
    " ORDER BY time, seq LIMIT 1"
)
# The account's `n`th entry after a seq, from change_log_account alone: the end of the
# rows a filtered page of the account's log may examine.
ACCOUNT_SEQ_AFTER = (
    "SELECT seq FROM change_log WHERE account_id = ? AND seq > ? ORDER BY seq LIMIT 1 OFFSET ?"
)
SELECT_CHANGES_FROM = f"SELECT {CHANGE_COLUMNS} FROM change_log WHERE seq > ? ORDER BY seq LIMIT ?"
FIRST_SEQ_AT = "SELECT MIN(seq) FROM change_log WHERE time >= ?"
OLDEST_SEQ = "SELECT MIN(seq) FROM change_log"
# Retention: the oldest entries by seq (a few hundred, from the primary key: never a scan
# for the first young one), pruned up to the last one older than the cutoff; the head
# keeps the last pruned entry's seq and hash, so the chain verifies from the oldest kept.
SELECT_OLDEST_CHANGES = "SELECT seq, time, hash FROM change_log ORDER BY seq LIMIT ?"
PRUNE_CHANGES = "DELETE FROM change_log WHERE seq <= ?"
# Forward only: two pruners (of two processes) at once leave the further mark, whichever
# commits last; the head's lock is taken here, last, so writers wait for it only briefly.
MOVE_PRUNED = (
    "UPDATE change_head SET pruned_seq = ?, pruned_hash = ? WHERE one = 1 AND pruned_seq < ?"
)


def account_changes_query(
    account_id: bytes,
    live_mode: bool | None,
    where: EntryFilter,
    after_seq: int,
    limit: int,
    *,
    through_seq: int | None = None,
    columns: str = CHANGE_COLUMNS,
) -> tuple[str, list[Any]]:
    """An account's log in seq order from its index (account_id, seq), narrowed, up to
    `through_seq` when given."""
    statement = f"SELECT {columns} FROM change_log WHERE account_id = ? AND seq > ?"
    params: list[Any] = [account_id, after_seq]
    if through_seq is not None:
        statement += " AND seq <= ?"
        params.append(through_seq)
    if live_mode is not None:
        statement += " AND (live_mode = ? OR live_mode IS NULL)"
        params.append(live_mode)
    for column, value in (
        ("object_id", where.object_id), ("actor_kind", where.actor_kind),
        ("actor_id", where.actor_id), ("action", where.action),
    ):  # fmt: skip
        if value is not None:
            statement += f" AND {column} = ?"
            params.append(value)
    if where.time_from is not None:
        statement += " AND time >= ?"
        params.append(where.time_from)
    if where.time_to is not None:
        statement += " AND time <= ?"
        params.append(where.time_to)
    return statement + " ORDER BY seq LIMIT ?", [*params, limit]


# The device counter (migration 0005): a slot per device id's last byte, summed.
COUNT_SLOTS = 16
ADD_TO_DEVICE_COUNT = (
    "INSERT INTO device_counts (account_id, live_mode, slot, devices) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (account_id, live_mode, slot)"
    " DO UPDATE SET devices = device_counts.devices + excluded.devices"
)
SELECT_DEVICE_COUNT = (
    "SELECT COALESCE(SUM(devices), 0) FROM device_counts WHERE account_id = ? AND live_mode = ?"
)
SELECT_KEY_HOLDERS = "SELECT device_id FROM device_keys WHERE public_key_hash = ?"
CLAIM_KEY = (
    "INSERT INTO device_keys (public_key_hash, device_id) VALUES (?, ?)"
    " ON CONFLICT (public_key_hash) DO NOTHING"
)


def in_list(statement: str, count: int) -> str:
    """`statement` with its `(?)` marker widened to `count` placeholders (count >= 1)."""
    return statement.replace("(?)", "(" + ", ".join("?" * count) + ")")


@cache
def insert_rows(statement: str, count: int) -> str:
    """A one-row `INSERT ... VALUES (?, ...)` widened to `count` rows: bulk inserts through
    each driver's plain statement call, one round trip and one parse per batch of rows."""
    head, _, row = statement.partition(" VALUES ")
    return head + " VALUES " + ", ".join([row] * count)


def insert_target(statement: str) -> tuple[str, list[str]]:
    """The table and columns of a one-row `INSERT INTO t (a, b) VALUES (?, ?)`."""
    head = statement.partition(" VALUES ")[0].removeprefix("INSERT INTO ")
    table, _, columns = head.partition(" ")
    return table, [column.strip() for column in columns.strip("()").split(",")]


# Bulk import: which of a batch of values are taken. Each value is its own correlated
# lookup on the full key of its unique index: an `IN (...)` list lets PostgreSQL, when the
# account is new to its statistics (as it is during an import into it), scan every
# device of the account instead, once per batch, which grows with the import.
SELECT_TAKEN_IDS = "SELECT id FROM devices WHERE id IN (?)"
SELECT_TAKEN_REFERENCES = (
    "SELECT v.column1, (SELECT d.id FROM devices d WHERE d.account_id = ? AND d.live_mode = ?"
    " AND d.reference_id = v.column1 AND d.status <> 'DELETED') FROM (VALUES (?)) AS v"
)
SELECT_TAKEN_IDENTIFIERS = (
    "SELECT v.column1, (SELECT d.id FROM devices d WHERE d.division_id = ? AND d.live_mode = ?"
    " AND d.device_identifier = v.column1 AND d.status <> 'DELETED') FROM (VALUES (?)) AS v"
)


def values_list(statement: str, count: int) -> str:
    """`statement` with its `(VALUES (?))` widened to `count` one-column rows."""
    return statement.replace("(VALUES (?))", "(VALUES " + ", ".join(["(?)"] * count) + ")")


# Export: keyset pages over the listing index, oldest first.
SELECT_OLDEST_FIRST = _LIST_HEAD + _OLDEST_FIRST
SELECT_OLDEST_AFTER = _LIST_HEAD + _NEWER + _OLDEST_FIRST

SELECT_FIELDS_OF = (
    f"SELECT {FIELD_COLUMNS} FROM profile_fields WHERE profile_id IN (?) ORDER BY position, id"
)
SELECT_VALUES_OF = (
    "SELECT device_id, field_id, value FROM device_field_values WHERE device_id IN (?)"
)


def count_slot(device_id: bytes) -> int:
    """Which device_counts row a device is counted in (UUIDv7's last byte is random)."""
    return device_id[-1] % COUNT_SLOTS


# By primary key only: with `account_id = ? AND live_mode = ?` beside the ids, SQLite
# (no statistics) walks all of the account's devices in devices_listing instead. The
# store checks the account and mode of what it found.
SELECT_DEVICES_BY_IDS = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id IN (?)"


def division_condition(division_ids: frozenset[bytes]) -> tuple[str, list[Any]]:
    """A device list's condition for a key limited to `division_ids` (core/reach.py): one
    division uses the listing index on `division_id =`; none matches nothing."""
    if not division_ids:
        return " AND 0 = 1", []
    ordered = sorted(division_ids)
    if len(ordered) == 1:
        return " AND division_id = ?", ordered
    return in_list(" AND division_id IN (?)", len(ordered)), ordered


def query_devices_statements(
    account_id: bytes,
    live_mode: bool,
    where: DeviceFilter,
    limit: int,
    offset: int,
    columns: str = DEVICE_COLUMNS,
) -> tuple[str, str, list[Any], list[Any]]:
    """(page SQL, bounded count SQL, page params, count params without the bound) for
    dialect D's filtered list; the count statement takes the bound as its last parameter."""
    conditions = ["account_id = ?", "live_mode = ?", "status <> 'DELETED'"]
    params: list[Any] = [account_id, live_mode]
    for column, op, value in (
        ("device_identifier", "=", where.device_identifier),
        ("division_id", "=", where.division_id),
        ("profile_id", "=", where.profile_id),
        ("created_at", ">=", where.created_from),
        ("created_at", "<=", where.created_to),
        ("updated_at", ">=", where.updated_from),
        ("updated_at", "<=", where.updated_to),
    ):
        if value is not None:
            conditions.append(f"{column} {op} ?")
            params.append(value)
    condition = " AND ".join(conditions)
    if where.division_ids is not None:
        limit_sql, limit_params = division_condition(where.division_ids)
        condition += limit_sql
        params.extend(limit_params)
    page = (
        f"SELECT {columns} FROM devices WHERE {condition} ORDER BY created_at, id LIMIT ? OFFSET ?"
    )
    count = f"SELECT COUNT(*) FROM (SELECT 1 FROM devices WHERE {condition} LIMIT ?) AS matching"
    return page, count, [*params, limit, offset], params


def account_from_row(row: Sequence[Any]) -> Account:
    return Account(
        id=bytes(row[0]), name=row[1], created_at=int(row[2]), api_version=row[3],
        disabled_at=_int_or_none(row[4]),
    )  # fmt: skip


def account_row(account: Account) -> tuple[Any, ...]:
    return (account.id, account.name, account.created_at, account.api_version, account.disabled_at)


def key_row(key: ApiKey) -> tuple[Any, ...]:
    return (
        key.id, key.account_id, key.live_mode, key.key_hash, key.prefix, key.created_at,
        key.revoked_at, key.name, key.scope.value, key.expires_at, key.last_used_at,
        key.rotated_from,
    )  # fmt: skip


def key_from_row(row: Sequence[Any]) -> ApiKey:
    return ApiKey(
        id=bytes(row[0]), account_id=bytes(row[1]), live_mode=bool(row[2]),
        key_hash=bytes(row[3]), prefix=row[4], created_at=int(row[5]),
        revoked_at=_int_or_none(row[6]), name=row[7], scope=Scope(row[8]),
        expires_at=_int_or_none(row[9]), last_used_at=_int_or_none(row[10]),
        rotated_from=None if row[11] is None else bytes(row[11]),
    )  # fmt: skip


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def division_row(division: Division) -> tuple[Any, ...]:
    return (
        division.id,
        division.account_id,
        division.name,
        division.is_default,
        division.created_at,
        division.updated_at,
    )


def division_from_row(row: Sequence[Any]) -> Division:
    return Division(
        id=bytes(row[0]),
        account_id=bytes(row[1]),
        name=row[2],
        is_default=bool(row[3]),
        created_at=row[4],
        updated_at=row[5],
    )


def field_row(field: ProfileField) -> tuple[Any, ...]:
    return (field.id, field.profile_id, field.name, field.mandatory, field.position)


def field_from_row(row: Sequence[Any]) -> ProfileField:
    return ProfileField(
        id=bytes(row[0]),
        profile_id=bytes(row[1]),
        name=row[2],
        mandatory=bool(row[3]),
        position=row[4],
    )


def certificate_row(cert: Certificate) -> tuple[Any, ...]:
    return (
        cert.id,
        cert.account_id,
        cert.device_id,
        cert.serial,
        cert.fingerprint,
        cert.public_key_hash,
        cert.pem,
        cert.not_before,
        cert.not_after,
        cert.issuer,
        cert.created_at,
        cert.revoked_at,
        cert.revocation_reason,
        cert.issued_by,
        cert.parent_id,
    )


def certificate_from_row(row: Sequence[Any]) -> Certificate:
    return Certificate(
        id=bytes(row[0]),
        account_id=bytes(row[1]),
        device_id=bytes(row[2]),
        serial=row[3],
        fingerprint=bytes(row[4]),
        public_key_hash=bytes(row[5]),
        pem=row[6],
        not_before=row[7],
        not_after=row[8],
        issuer=row[9],
        created_at=row[10],
        revoked_at=row[11],
        revocation_reason=row[12],
        issued_by=row[13],
        parent_id=None if row[14] is None else bytes(row[14]),
    )


def list_devices_query(
    account_id: bytes,
    live_mode: bool,
    limit: int,
    reference_id: str | None,
    cursor: tuple[int, bytes] | None,
    direction: str,
    division_ids: frozenset[bytes] | None = None,
) -> tuple[str, list[Any], bool]:
    """The listing statement, its parameters, and whether its rows come oldest first
    (paging towards newer devices walks the index upwards, then the caller reverses)."""
    sql = _LIST_HEAD
    params: list[Any] = [account_id, live_mode]
    if division_ids is not None:
        limit_sql, limit_params = division_condition(division_ids)
        sql += limit_sql
        params.extend(limit_params)
    if reference_id is not None:
        sql += _BY_REFERENCE
        params.append(reference_id)
    ascending = False
    if cursor is not None:
        if direction == "newer":
            sql += _NEWER
            ascending = True
        else:
            sql += _OLDER
        params.extend(cursor)
    sql += _OLDEST_FIRST if ascending else _NEWEST_FIRST
    params.append(limit)
    return sql, params, ascending


# Restore: only a deleted device; the partial unique indexes decide a clash (DuplicateValue).
RESTORE_DEVICE = (
    "UPDATE devices SET status = 'ACTIVE', version = version + 1, updated_at = ?"
    " WHERE id = ? AND account_id = ? AND live_mode = ? AND status = 'DELETED'"
    f" RETURNING {DEVICE_COLUMNS}"
)


def update_device_statement(
    change: DeviceChange,
    account_id: bytes,
    live_mode: bool,
    device_id: bytes,
    now: int,
    writable_only: bool = False,
) -> tuple[str, list[Any]]:
    """`UPDATE ... RETURNING` for the columns `change` sets (the field values are written
    apart). `writable_only`: the device itself is writing, so it must still be ACTIVE
    with allow_write when the row is written (not only when access was checked)."""
    columns = change.columns()
    names = sorted(columns)
    assignments = "".join(f"{column} = ?, " for column in names)
    guard = " AND status = 'ACTIVE' AND allow_write = ?" if writable_only else ""
    sql = (
        f"UPDATE devices SET {assignments}version = version + 1, updated_at = ?"
        f" WHERE id = ? AND account_id = ? AND live_mode = ? AND status <> 'DELETED'{guard}"
        f" RETURNING {DEVICE_COLUMNS}"
    )
    params: list[Any] = [_column_value(columns[c]) for c in names]
    params += [now, device_id, account_id, live_mode]
    if writable_only:
        params.append(True)
    return sql, params


def _column_value(value: object) -> object:
    return value.value if isinstance(value, DeviceStatus) else value


def device_row(device: Device) -> tuple[Any, ...]:
    return (
        device.id,
        device.account_id,
        device.live_mode,
        device.reference_id,
        device.device_identifier,
        device.division_id,
        device.profile_id,
        device.status.value,
        device.allow_read,
        device.allow_write,
        device.allow_renew,
        device.last_seen,
        device.created_at,
        device.updated_at,
        device.version,
    )


def device_from_row(row: Sequence[Any]) -> Device:
    return Device(
        id=bytes(row[0]),
        account_id=bytes(row[1]),
        live_mode=bool(row[2]),
        reference_id=row[3],
        device_identifier=row[4],
        division_id=bytes(row[5]),
        profile_id=bytes(row[6]),
        status=DeviceStatus(row[7]),
        allow_read=bool(row[8]),
        allow_write=bool(row[9]),
        allow_renew=bool(row[10]),
        last_seen=row[11],
        created_at=row[12],
        updated_at=row[13],
        version=row[14],
    )


def profile_row(profile: DeviceProfile) -> tuple[Any, ...]:
    return (
        profile.id,
        profile.account_id,
        profile.division_id,
        profile.name,
        profile.is_default,
        profile.allow_read,
        profile.allow_write,
        profile.allow_renew,
        profile.created_at,
        profile.updated_at,
    )


def profile_from_row(row: Sequence[Any]) -> DeviceProfile:
    return DeviceProfile(
        id=bytes(row[0]),
        account_id=bytes(row[1]),
        division_id=bytes(row[2]),
        name=row[3],
        is_default=bool(row[4]),
        allow_read=bool(row[5]),
        allow_write=bool(row[6]),
        allow_renew=bool(row[7]),
        created_at=row[8],
        updated_at=row[9],
    )


def duplicate_field(index_or_message: str) -> str | None:
    """Which record field a unique-index violation is about, from the index name (PostgreSQL)
    or the driver's message (SQLite names the columns)."""
    text = index_or_message
    if "devices_reference" in text or "devices.reference_id" in text:
        return "reference_id"
    if "devices_identifier" in text or "devices.device_identifier" in text:
        return "device_identifier"
    if "divisions_name" in text or "divisions.name" in text:
        return "division_name"
    if "device_profiles_name" in text or "device_profiles.name" in text:
        return "profile_name"
    if "profile_fields_name" in text or "profile_fields.name" in text:
        return "field_name"
    if "public_key" in text:
        return "public_key"
    if "fingerprint" in text:
        return "fingerprint"
    if "certificates_serial" in text or "certificates.serial" in text:
        return "serial"
    if "operators_email" in text or "operators.email" in text:
        return "email"
    return None
