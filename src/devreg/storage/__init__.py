"""Storage: the DeviceStore interface (declared in the core) on SQLite or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from devreg.storage.base import SqlDeviceStore

SQLITE_FILE = "devreg.sqlite3"


def is_postgres_url(url: str | None) -> bool:
    return url is not None and url.startswith(("postgresql://", "postgres://"))


async def migrate_store(database_url: str | None, data_dir: Path) -> list[int]:
    """Create or upgrade the schema; returns the migration versions applied now."""
    if database_url is not None and is_postgres_url(database_url):
        import asyncpg

        from devreg.storage import postgres

        async with postgres.translated_errors():  # unreachable: StoreUnavailable, said so
            conn = await asyncpg.connect(database_url)
            try:
                return await postgres.migrate(conn)
            finally:
                await conn.close()
    from devreg.storage import sqlite

    sqlite_conn = sqlite.connect(sqlite_path(database_url, data_dir))
    try:
        return sqlite.migrate(sqlite_conn)
    finally:
        sqlite_conn.close()


def sqlite_path(database_url: str | None, data_dir: Path) -> Path:
    """`sqlite:///abs/path` or `sqlite:rel/path` names a file; the default lives in data_dir."""
    if database_url:
        if not database_url.startswith("sqlite:"):
            raise ValueError(
                f"unsupported database URL scheme in {database_url.split(':', 1)[0]!r}:"
                " use postgresql://... or sqlite:///path"
            )
        path = database_url.removeprefix("sqlite:").removeprefix("//")
        return Path(path)
    return data_dir / SQLITE_FILE


async def open_store(
    database_url: str | None, data_dir: Path, *, durable: bool = True
) -> SqlDeviceStore:
    """The store, which is also the change log's (changelog/store.py). `durable`: every
    commit is on disk before it returns (the default); without, a
    commit survives a crash of this process but maybe not of the machine."""
    if database_url is not None and is_postgres_url(database_url):
        from devreg.storage.postgres import PostgresDeviceStore

        return await PostgresDeviceStore.open(database_url, durable=durable)
    from devreg.storage.sqlite import SqliteDeviceStore

    return SqliteDeviceStore(sqlite_path(database_url, data_dir), durable=durable)
