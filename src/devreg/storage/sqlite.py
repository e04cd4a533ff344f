"""SqliteDeviceStore: the default store, one file in the data directory.

WAL lets readers run beside the writer; `synchronous=FULL` fsyncs every commit, so an
update answered 2xx survives a crash or power loss. Statements are short and indexed, so
they run inline on the event loop rather than paying a thread hop per call.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from devreg.core.records import Account, ApiKey, Device, DeviceProfile, Division
from devreg.core.store import (
    UPDATABLE_DEVICE_COLUMNS,
    DuplicateValue,
    ListDirection,
    StoreUnavailable,
)
from devreg.storage import sql
from devreg.storage.migrations import migration_scripts, split_statements

BUSY_TIMEOUT_MS = 5000


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply pending migrations under one write lock; returns the versions applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    applied: list[int] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, script in migration_scripts("sqlite"):
            if version in done:
                continue
            for statement in split_statements(script):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, CAST(strftime('%s') AS INTEGER))",
                (version, name),
            )
            applied.append(version)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied


class SqliteDeviceStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path)

    def _run(self, statement: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(statement, params)
        except sqlite3.IntegrityError as exc:
            field = sql.duplicate_field(str(exc))
            if field is None:
                raise
            raise DuplicateValue(field) from exc
        except sqlite3.OperationalError as exc:
            # "database is locked" after busy_timeout, disk I/O errors: retryable, not a bug.
            raise StoreUnavailable(str(exc)) from exc

    def _one(self, statement: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        # fetchall, not fetchone: a statement left unfinished keeps its transaction (and,
        # for UPDATE ... RETURNING, the write lock and the commit) open.
        rows = self._run(statement, params).fetchall()
        return rows[0] if rows else None

    async def ping(self) -> None:
        self._one(sql.SELECT_HEALTH)

    async def create_account(
        self, account: Account, keys: list[ApiKey], division: Division, profile: DeviceProfile
    ) -> None:
        self._run("BEGIN IMMEDIATE")
        try:
            self._run(sql.INSERT_ACCOUNT, (account.id, account.name, account.created_at))
            for key in keys:
                self._run(
                    sql.INSERT_API_KEY,
                    (
                        key.id,
                        key.account_id,
                        key.live_mode,
                        key.key_hash,
                        key.prefix,
                        key.created_at,
                        key.revoked_at,
                    ),
                )
            self._run(
                sql.INSERT_DIVISION,
                (
                    division.id,
                    division.account_id,
                    division.name,
                    division.is_default,
                    division.created_at,
                    division.updated_at,
                ),
            )
            self._run(sql.INSERT_PROFILE, sql.profile_row(profile))
            self._run("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    async def find_api_key(self, key_hash: bytes) -> ApiKey | None:
        row = self._one(sql.SELECT_API_KEY, (key_hash,))
        if row is None:
            return None
        return ApiKey(
            id=row[0],
            account_id=row[1],
            live_mode=bool(row[2]),
            key_hash=row[3],
            prefix=row[4],
            created_at=row[5],
            revoked_at=row[6],
        )

    async def default_profile(self, account_id: bytes) -> DeviceProfile | None:
        row = self._one(sql.SELECT_DEFAULT_PROFILE, (account_id,))
        return None if row is None else sql.profile_from_row(row)

    async def insert_device(self, device: Device) -> None:
        self._run(sql.INSERT_DEVICE, sql.device_row(device))

    async def get_device(
        self, account_id: bytes, live_mode: bool, device_id: bytes, *, include_deleted: bool = False
    ) -> Device | None:
        statement = sql.SELECT_DEVICE_ANY_STATUS if include_deleted else sql.SELECT_DEVICE
        row = self._one(statement, (device_id, account_id, live_mode))
        return None if row is None else sql.device_from_row(row)

    async def list_devices(
        self,
        account_id: bytes,
        live_mode: bool,
        *,
        limit: int,
        reference_id: str | None = None,
        cursor: tuple[int, bytes] | None = None,
        direction: ListDirection = "older",
    ) -> list[Device]:
        statement, params, ascending = sql.list_devices_query(
            account_id, live_mode, limit, reference_id, cursor, direction
        )
        devices = [sql.device_from_row(row) for row in self._run(statement, params).fetchall()]
        if ascending:
            devices.reverse()
        return devices

    async def update_fields(
        self,
        account_id: bytes,
        live_mode: bool,
        device_id: bytes,
        changes: dict[str, object],
        now: int,
    ) -> Device | None:
        unknown = set(changes) - UPDATABLE_DEVICE_COLUMNS
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        statement, params = sql.update_device_statement(
            changes, account_id, live_mode, device_id, now
        )
        row = self._one(statement, params)
        return None if row is None else sql.device_from_row(row)

    async def close(self) -> None:
        self._conn.close()
