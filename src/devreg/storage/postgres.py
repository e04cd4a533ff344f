"""PostgresDeviceStore: the store for several app processes, on asyncpg's connection pool."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import cache
from typing import Any, TypeVar

import asyncpg

from devreg.core.store import DuplicateValue, MissingReference, StorageFull, StoreUnavailable
from devreg.storage import sql
from devreg.storage.base import Params, SqlDeviceStore, SqlRunner
from devreg.storage.disk_full import DiskFullEpisodes
from devreg.storage.migrations import migration_scripts

T = TypeVar("T")

log = logging.getLogger("devreg.storage")

# Any migration run holds this advisory lock, so concurrent `init`/`serve` runs take turns.
MIGRATION_LOCK_ID = 0x64657672  # "devr"

_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.CannotConnectNowError,
    # The server's "terminating connection" arriving between two of our statements leaves
    # the connection's protocol mid-error: the next statement on it is refused with this.
    asyncpg.exceptions.InternalClientError,
)


@cache
def numbered(statement: str) -> str:
    """`?` placeholders -> `$1, $2, ...` (our SQL has no `?` inside literals)."""
    counter = iter(range(1, 100_000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", statement)


@asynccontextmanager
async def translated_errors(disk_full: DiskFullEpisodes | None = None) -> AsyncIterator[None]:
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        field = sql.duplicate_field(exc.constraint_name or str(exc))
        if field is None:
            raise
        raise DuplicateValue(field) from exc
    except asyncpg.ForeignKeyViolationError as exc:
        raise MissingReference(exc.constraint_name or str(exc)) from exc
    except asyncpg.exceptions.DiskFullError as exc:  # SQLSTATE 53100: "could not extend file"
        detail = f"database disk full: {exc}"
        raise (StorageFull(detail) if disk_full is None else disk_full.refused(detail)) from exc
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"database unavailable: {type(exc).__name__}: {exc}") from exc


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


@asynccontextmanager
async def pooled(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the pool, given back afterwards. Giving it back resets it, which
    fails when the connection broke after our statements had finished (the server shutting
    down, say): the pool then drops it, and what the statements did stands (a COMMIT that
    returned is committed), so that failure is not the request's and is not raised."""
    conn = await pool.acquire()
    try:
        yield conn
    finally:
        try:
            await pool.release(conn)
        except Exception as exc:  # the pool has terminated that connection
            log.info("a database connection broke as it was given back: %s", exc)


class _PostgresRunner:
    """Runs on the pool (each statement its own transaction) or on one held connection."""

    __slots__ = ("_disk_full", "_target")

    def __init__(
        self, target: asyncpg.Pool | asyncpg.Connection, disk_full: DiskFullEpisodes
    ) -> None:
        self._target = target
        self._disk_full = disk_full

    async def rows(self, statement: str, params: Params = ()) -> list[Sequence[Any]]:
        async with translated_errors(self._disk_full):
            if isinstance(self._target, asyncpg.Pool):
                async with pooled(self._target) as conn:
                    found = list(await conn.fetch(numbered(statement), *params))
                # A write on its own that returned rows stored them: a disk-full episode
                # is over (a read, or an UPDATE that matched nothing, proves nothing).
                if self._disk_full.active and found and _is_write(statement):
                    self._disk_full.wrote()
                return found
            return list(await self._target.fetch(numbered(statement), *params))

    async def run(self, statement: str, params: Params = ()) -> None:
        async with translated_errors(self._disk_full):
            if isinstance(self._target, asyncpg.Pool):
                async with pooled(self._target) as conn:
                    status = await conn.execute(numbered(statement), *params)
                if self._disk_full.active and not status.endswith(" 0"):  # "UPDATE 0": none
                    self._disk_full.wrote()
                return
            await self._target.execute(numbered(statement), *params)

    async def run_together(self, statements: Sequence[tuple[str, Params]]) -> None:
        async with translated_errors(self._disk_full):
            if isinstance(self._target, asyncpg.Pool):
                async with pooled(self._target) as conn, conn.transaction():
                    for statement, params in statements:
                        await conn.execute(numbered(statement), *params)
                if self._disk_full.active:  # a device stored: the disk has room again
                    self._disk_full.wrote()
                return
            for statement, params in statements:
                await self._target.execute(numbered(statement), *params)

    async def copy_rows(self, table: str, columns: list[str], rows: list[Params]) -> None:
        """COPY (binary) into `table`: about twice the rows per second of INSERTs."""
        if not isinstance(self._target, asyncpg.Connection):
            raise TypeError("COPY runs inside a transaction, on its connection")
        async with translated_errors(self._disk_full):
            await self._target.copy_records_to_table(table, records=rows, columns=columns)


def _is_write(statement: str) -> bool:
    return statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE")


class PostgresDeviceStore(SqlDeviceStore):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.disk_full = DiskFullEpisodes()
        self._runner = _PostgresRunner(pool, self.disk_full)

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
            yield _PostgresRunner(conn, self.disk_full)
        if self.disk_full.active:  # committed: the transactions here all write
            self.disk_full.wrote()

    async def atomic(self, work: Callable[[SqlRunner], Awaitable[T]]) -> T:
        async with self.transaction() as tx:
            return await work(tx)

    def storage_full(self) -> bool:
        return self.disk_full.full_now()

    async def insert_many(self, tx: SqlRunner, statement: str, rows: list[Params]) -> None:
        if not isinstance(tx, _PostgresRunner):
            raise TypeError("insert_many runs on this store's transaction")
        table, columns = sql.insert_target(statement)
        await tx.copy_rows(table, columns, rows)

    async def close(self) -> None:
        await self._pool.close()
