"""SqliteDeviceStore: the default store, one file in the data directory.

WAL lets readers run beside the writer; `synchronous=FULL` fsyncs every commit, so an
update answered 2xx survives a crash or power loss. Statements are short and indexed, so
they run inline on the event loop rather than paying a thread hop per call. Because no
statement awaits anything, a transaction can never interleave with another coroutine's
statements on the shared connection.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from devreg.core.store import DuplicateValue, MissingReference, StoreUnavailable
from devreg.storage import sql
from devreg.storage.base import Params, SqlDeviceStore, SqlRunner
from devreg.storage.group_commit import GroupCommitRunner
from devreg.storage.migrations import migration_scripts, split_statements

BUSY_TIMEOUT_MS = 5000


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Device data and key hashes: owner only. SQLite gives the -wal and -shm files the
    # database file's mode, so creating it 0600 covers them too.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
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


class _SqliteRunner:
    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, statement: str, params: Params) -> sqlite3.Cursor:
        try:
            return self._conn.execute(statement, params)
        except sqlite3.IntegrityError as exc:
            if "FOREIGN KEY" in str(exc):
                raise MissingReference(str(exc)) from exc
            field = sql.duplicate_field(str(exc))
            if field is None:
                raise
            raise DuplicateValue(field) from exc
        except sqlite3.OperationalError as exc:
            # "database is locked" after busy_timeout, disk I/O errors: retryable, not a bug.
            raise StoreUnavailable(str(exc)) from exc

    async def rows(self, statement: str, params: Params = ()) -> list[Sequence[Any]]:
        # fetchall, never fetchone: a statement left unfinished keeps its transaction (and,
        # for UPDATE ... RETURNING, the write lock and the commit) open.
        return self.execute(statement, params).fetchall()

    async def run(self, statement: str, params: Params = ()) -> None:
        self.execute(statement, params)


class SqliteDeviceStore(SqlDeviceStore):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path)
        self._runner = _SqliteRunner(self._conn)
        # Single-statement writes outside transactions share commits (and fsyncs).
        self.group = GroupCommitRunner(self._conn, self._runner.execute)

    def runner(self) -> SqlRunner:
        return self.group

    def transaction(self) -> AbstractAsyncContextManager[SqlRunner]:
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[SqlRunner]:
        await self._runner.run("BEGIN IMMEDIATE")
        try:
            yield self._runner
            await self._runner.run("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (disk full, I/O error): only then not.
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        self._conn.close()
