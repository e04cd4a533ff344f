"""SQL shared by both stores, written with `?` placeholders; PostgreSQL gets them numbered.

Keeping one text per statement means the two backends cannot drift apart: the only
differences live in the migrations (types) and in how each driver is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from devreg.core.records import Device, DeviceProfile, DeviceStatus

DEVICE_COLUMNS = (
    "id, account_id, live_mode, reference_id, device_identifier, division_id, profile_id,"
    " status, allow_read, allow_write, allow_renew, last_seen, created_at, updated_at, version"
)
PROFILE_COLUMNS = (
    "id, account_id, division_id, name, is_default, allow_read, allow_write, allow_renew,"
    " created_at, updated_at"
)

INSERT_ACCOUNT = "INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)"
INSERT_API_KEY = (
    "INSERT INTO api_keys (id, account_id, live_mode, key_hash, prefix, created_at, revoked_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
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
SELECT_API_KEY = (
    "SELECT id, account_id, live_mode, key_hash, prefix, created_at, revoked_at"
    " FROM api_keys WHERE key_hash = ?"
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


def list_devices_query(
    account_id: bytes,
    live_mode: bool,
    limit: int,
    reference_id: str | None,
    cursor: tuple[int, bytes] | None,
    direction: str,
) -> tuple[str, list[Any], bool]:
    """The listing statement, its parameters, and whether its rows come oldest first
    (paging towards newer devices walks the index upwards, then the caller reverses)."""
    sql = _LIST_HEAD
    params: list[Any] = [account_id, live_mode]
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


def update_device_statement(
    changes: dict[str, object], account_id: bytes, live_mode: bool, device_id: bytes, now: int
) -> tuple[str, list[Any]]:
    """`UPDATE ... RETURNING` for a whitelisted set of columns (the caller checks the names)."""
    columns = sorted(changes)
    assignments = "".join(f"{column} = ?, " for column in columns)
    sql = (
        f"UPDATE devices SET {assignments}version = version + 1, updated_at = ?"
        " WHERE id = ? AND account_id = ? AND live_mode = ? AND status <> 'DELETED'"
        f" RETURNING {DEVICE_COLUMNS}"
    )
    params: list[Any] = [_column_value(changes[c]) for c in columns]
    params += [now, device_id, account_id, live_mode]
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
    return None
