"""SqliteDeviceStore: the default store, one file in the data directory.

WAL lets readers run beside the writer; `synchronous=FULL` fsyncs every commit, so an
update answered 2xx survives a crash or power loss. Writes go through the group-commit
runner (group_commit.py), which shares one commit among the writes that arrive together
and waits for the disk in a thread; reads run inline on a second, read-only connection.
Statements are short and indexed, so running them inline costs less than a thread hop
per call; a transaction's statements never await anything, so two transactions can
never interleave on the writer.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

from devreg.core.store import DuplicateValue, MissingReference, StoreUnavailable
from devreg.storage import sql
from devreg.storage.base import Params, SqlDeviceStore, SqlRunner
from devreg.storage.disk_full import DiskFullEpisodes, sqlite_disk_full
from devreg.storage.group_commit import GroupCommitRunner
from devreg.storage.migrations import migration_scripts, split_statements

BUSY_TIMEOUT_MS = 5000
T = TypeVar("T")
_UMASK_LOCK = threading.Lock()


def connect(path: Path, *, durable: bool = True) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Device data and key hashes: owner only. SQLite creates the file (and later the -wal
    # and -shm files, with the database file's mode) under the process umask, so a strict
    # umask while it opens makes them 0600 from the first byte. Never open and close our
    # own descriptor on the file instead: closing any descriptor drops every POSIX lock
    # this process holds on it, including another connection's WAL locks, after which
    # that connection silently stops seeing other processes' commits.
    with _UMASK_LOCK:  # the umask is per process: threads opening stores take turns
        previous = os.umask(0o077)
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _enter_wal(conn)
        finally:
            os.umask(previous)
    # FULL: a commit is fsync'd before it returns. NORMAL (WAL): written to the OS, not
    # fsync'd; it survives a crash of the process, not a power loss.
    conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _enter_wal(conn: sqlite3.Connection) -> None:
    """Switching a fresh file to WAL needs an exclusive lock, and SQLite answers "locked"
    at once, without its busy handler, when another process is opening the same file
    (several `devreg init`/`serve` starting together): retry within the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


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
    __slots__ = ("_conn", "_disk_full")

    def __init__(self, conn: sqlite3.Connection, disk_full: DiskFullEpisodes) -> None:
        self._conn = conn
        self._disk_full = disk_full

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
            if sqlite_disk_full(exc):
                raise self._disk_full.refused(str(exc)) from exc
            # "database is locked" after busy_timeout, disk I/O errors: retryable, not a bug.
            raise StoreUnavailable(str(exc)) from exc

    async def rows(self, statement: str, params: Params = ()) -> list[Sequence[Any]]:
        # fetchall, never fetchone: a statement left unfinished keeps its transaction (and,
        # for UPDATE ... RETURNING, the write lock and the commit) open.
        return self.execute(statement, params).fetchall()

    async def run(self, statement: str, params: Params = ()) -> None:
        self.execute(statement, params)


class SqliteDeviceStore(SqlDeviceStore):
    serialized_writes = True  # a group-commit batch holds the write lock all along

    def __init__(self, path: Path, *, durable: bool = True) -> None:
        self.path = path
        self._conn = connect(path, durable=durable)  # the writer: only group commit uses it
        self._reader = connect(path)
        # A read-only connection by construction: a write sent to it is a bug, refused.
        self._reader.execute("PRAGMA query_only = 1")
        self.disk_full = DiskFullEpisodes()
        self.group = GroupCommitRunner(
            self._conn,
            _SqliteRunner(self._conn, self.disk_full).execute,
            _SqliteRunner(self._reader, self.disk_full).execute,
            self.disk_full,
        )

    def storage_full(self) -> bool:
        return self.disk_full.full_now()

    def runner(self) -> SqlRunner:
        return self.group

    def transaction(self) -> AbstractAsyncContextManager[SqlRunner]:
        return self.group.transaction()

    async def atomic(self, work: Callable[[SqlRunner], Awaitable[T]]) -> T:
        return await self.group.atomic(work)

    async def close(self) -> None:
        await self.group.close()
        self._reader.close()
        self._conn.close()
