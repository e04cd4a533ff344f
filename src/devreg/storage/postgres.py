"""PostgresDeviceStore: the store for several app processes, on asyncpg's connection pool."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

import asyncpg

from devreg.core.records import Account, ApiKey, Device, DeviceProfile, Division
from devreg.core.store import (
    UPDATABLE_DEVICE_COLUMNS,
    DuplicateValue,
    ListDirection,
    StoreUnavailable,
)
from devreg.storage import sql
from devreg.storage.migrations import migration_scripts

# Any migration run holds this advisory lock, so concurrent `init`/`serve` runs take turns.
MIGRATION_LOCK_ID = 0x64657672  # "devr"

_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.CannotConnectNowError,
)


@cache
def numbered(statement: str) -> str:
    """`?` placeholders -> `$1, $2, ...` (our SQL has no `?` inside literals)."""
    counter = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", statement)


@asynccontextmanager
async def translated_errors() -> AsyncIterator[None]:
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        field = sql.duplicate_field(exc.constraint_name or str(exc))
        if field is None:
            raise
        raise DuplicateValue(field) from exc
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc


async def migrate(conn: asyncpg.Connection) -> list[int]:
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
        )
        done = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, script in migration_scripts("postgres"):
            if version in done:
                continue
            await conn.execute(script)
            await conn.execute(
                "INSERT INTO schema_migrations VALUES ($1, $2, now())", version, name
            )
            applied.append(version)
    return applied


class PostgresDeviceStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> PostgresDeviceStore:
        async with translated_errors():
            pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
        return cls(pool)

    async def _fetchrow(self, statement: str, params: tuple[Any, ...] | list[Any]) -> Any:
        async with translated_errors():
            return await self._pool.fetchrow(numbered(statement), *params)

    async def ping(self) -> None:
        await self._fetchrow(sql.SELECT_HEALTH, ())

    async def create_account(
        self, account: Account, keys: list[ApiKey], division: Division, profile: DeviceProfile
    ) -> None:
        async with translated_errors(), self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                numbered(sql.INSERT_ACCOUNT), account.id, account.name, account.created_at
            )
            for key in keys:
                await conn.execute(
                    numbered(sql.INSERT_API_KEY),
                    key.id,
                    key.account_id,
                    key.live_mode,
                    key.key_hash,
                    key.prefix,
                    key.created_at,
                    key.revoked_at,
                )
            await conn.execute(
                numbered(sql.INSERT_DIVISION),
                division.id,
                division.account_id,
                division.name,
                division.is_default,
                division.created_at,
                division.updated_at,
            )
            await conn.execute(numbered(sql.INSERT_PROFILE), *sql.profile_row(profile))

    async def find_api_key(self, key_hash: bytes) -> ApiKey | None:
        row = await self._fetchrow(sql.SELECT_API_KEY, (key_hash,))
        if row is None:
            return None
        return ApiKey(
            id=row[0],
            account_id=row[1],
            live_mode=row[2],
            key_hash=row[3],
            prefix=row[4],
            created_at=row[5],
            revoked_at=row[6],
        )

    async def default_profile(self, account_id: bytes) -> DeviceProfile | None:
        row = await self._fetchrow(sql.SELECT_DEFAULT_PROFILE, (account_id,))
        return None if row is None else sql.profile_from_row(row)

    async def insert_device(self, device: Device) -> None:
        async with translated_errors():
            await self._pool.execute(numbered(sql.INSERT_DEVICE), *sql.device_row(device))

    async def get_device(
        self, account_id: bytes, live_mode: bool, device_id: bytes, *, include_deleted: bool = False
    ) -> Device | None:
        statement = sql.SELECT_DEVICE_ANY_STATUS if include_deleted else sql.SELECT_DEVICE
        row = await self._fetchrow(statement, (device_id, account_id, live_mode))
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
        async with translated_errors():
            rows = await self._pool.fetch(numbered(statement), *params)
        devices = [sql.device_from_row(row) for row in rows]
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
        row = await self._fetchrow(statement, params)
        return None if row is None else sql.device_from_row(row)

    async def close(self) -> None:
        await self._pool.close()
