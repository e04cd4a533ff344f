"""PostgresDeviceStore: the store for several app processes, on asyncpg's connection pool."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar

import asyncpg

from devreg.storage import sql
from devreg.storage.base import Params, SqlDeviceStore, SqlRunner
from devreg.storage.disk_full import DiskFullEpisodes
from devreg.storage.migrations import migration_scripts
from devreg.storage.postgres_batch import PostgresGroupCommit
from devreg.storage.postgres_runner import PostgresRunner, numbered, pooled, translated_errors

__all__ = ["PostgresDeviceStore", "migrate", "numbered", "translated_errors"]

T = TypeVar("T")

# Any migration run holds this advisory lock, so concurrent `init`/`serve` runs take turns.
MIGRATION_LOCK_ID = 0x64657672  # "devr"


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


class PostgresDeviceStore(SqlDeviceStore):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.disk_full = DiskFullEpisodes()
        self._runner = PostgresRunner(pool, self.disk_full)
        self.group = PostgresGroupCommit(pool, self.disk_full)

    @classmethod
    async def open(
        cls, url: str, *, min_size: int = 0, max_size: int = 10, durable: bool = True
    ) -> PostgresDeviceStore:
        """No connection is made before one is needed (`min_size` 0): a worker started
        while the database is down (the supervisor replacing one that died) comes up and
        answers 503 until it is back, instead of failing its startup over and over."""
        # Not durable: the server answers a COMMIT before its WAL is flushed (a server
        # crash may lose the last moments' commits, never corrupt). Durable: the server's
        # own setting, "on" unless its operator chose otherwise.
        settings = {} if durable else {"synchronous_commit": "off"}
        async with translated_errors():
            pool = await asyncpg.create_pool(
                url, min_size=min_size, max_size=max_size, server_settings=settings
            )
        return cls(pool)

    def runner(self) -> SqlRunner:
        return self._runner

    def transaction(self) -> AbstractAsyncContextManager[SqlRunner]:
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[SqlRunner]:
        async with (
            translated_errors(self.disk_full),
            pooled(self._pool) as conn,
            conn.transaction(),
        ):
            yield PostgresRunner(conn, self.disk_full)
        if self.disk_full.active:  # committed: the transactions here all write
            self.disk_full.wrote()

    async def atomic(self, work: Callable[[SqlRunner], Awaitable[T]]) -> T:
        return await self.group.atomic(work)

    def storage_full(self) -> bool:
        return self.disk_full.full_now()

    async def insert_many(self, tx: SqlRunner, statement: str, rows: list[Params]) -> None:
        if not isinstance(tx, PostgresRunner):
            raise TypeError("insert_many runs on this store's transaction")
        table, columns = sql.insert_target(statement)
        await tx.copy_rows(table, columns, rows)

    async def close(self) -> None:
        await self.group.close()
        await self._pool.close()
