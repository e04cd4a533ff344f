"""Running statements on asyncpg: on the pool (each its own transaction) or on a held
connection, with the driver's errors translated to the store's."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

import asyncpg

from devreg.core.store import DuplicateValue, MissingReference, StorageFull, StoreUnavailable
from devreg.storage import sql
from devreg.storage.base import Params
from devreg.storage.disk_full import DiskFullEpisodes

log = logging.getLogger("devreg.storage")

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


class Contended(StoreUnavailable):
    """PostgreSQL gave up a statement over a row lock: a deadlock (a transaction
    rollback error) or a wait longer than `lock_timeout`. A group-commit batch runs such a
    write again; anywhere else it is a 503, as the client may retry."""


_CONTENDED = (asyncpg.TransactionRollbackError, asyncpg.exceptions.LockNotAvailableError)


@asynccontextmanager
async def translated_errors(disk_full: DiskFullEpisodes | None = None) -> AsyncIterator[None]:
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        field = sql.duplicate_field(exc.constraint_name or str(exc))
        if field is None:
            raise
        raise DuplicateValue(field) from exc
    except _CONTENDED as exc:
        raise Contended(f"database contention: {type(exc).__name__}: {exc}") from exc
    except asyncpg.ForeignKeyViolationError as exc:
        raise MissingReference(exc.constraint_name or str(exc)) from exc
    except asyncpg.exceptions.DiskFullError as exc:  # SQLSTATE 53100: "could not extend file"
        detail = f"database disk full: {exc}"
        raise (StorageFull(detail) if disk_full is None else disk_full.refused(detail)) from exc
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"database unavailable: {type(exc).__name__}: {exc}") from exc


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


class PostgresRunner:
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

    async def insert_rows(self, statement: str, rows: list[Params]) -> None:
        """`statement` once per row, in one round trip (on a held connection)."""
        if not isinstance(self._target, asyncpg.Connection):
            raise TypeError("insert_rows runs inside a transaction, on its connection")
        async with translated_errors(self._disk_full):
            await self._target.executemany(numbered(statement), rows)

    async def copy_rows(self, table: str, columns: list[str], rows: list[Params]) -> None:
        """COPY (binary) into `table`: about twice the rows per second of INSERTs."""
        if not isinstance(self._target, asyncpg.Connection):
            raise TypeError("COPY runs inside a transaction, on its connection")
        async with translated_errors(self._disk_full):
            await self._target.copy_records_to_table(table, records=rows, columns=columns)


def _is_write(statement: str) -> bool:
    return statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE")
