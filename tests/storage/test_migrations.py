"""Schema migrations on both backends: idempotent, recorded, durable settings, whole record."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg
import pytest

from devreg.storage import SQLITE_FILE, migrate_store, open_store, sqlite_path
from devreg.storage.migrations import migration_scripts, split_statements
from devreg.storage.postgres import numbered
from devreg.storage.sqlite import SqliteDeviceStore
from tests.conftest import POSTGRES_ADMIN_URL
from tests.storage.conftest import NOW, stored_account
from tests.storage.test_revocation_mark import device_with
from tests.support.origins import TEST_ORIGIN

RECORD_TABLES = {
    "accounts",
    "api_keys",
    "divisions",
    "device_profiles",
    "profile_fields",
    "devices",
    "device_field_values",
    "certificates",
    "enrollment_secrets",
    "device_keys",
}
VERSIONS = [version for version, _, _ in migration_scripts("sqlite")]
DEVICE_COLUMNS = {
    "id", "account_id", "live_mode", "reference_id", "device_identifier", "division_id",
    "profile_id", "status", "allow_read", "allow_write", "allow_renew", "last_seen",
    "created_at", "updated_at", "version",
}  # fmt: skip


@pytest.fixture
async def fresh_postgres(postgres_url: str) -> AsyncIterator[str]:
    """An empty PostgreSQL database (never migrated), dropped afterwards."""
    name = "devreg_mig_" + secrets.token_hex(4)
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = postgres_url.rpartition("/")
    yield f"{base}/{name}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_backend(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """An unmigrated database of each kind (None: SQLite in tmp_path)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("fresh_postgres")
        return url
    return None


async def fetch(
    database_url: str | None, data_dir: Path, query: str, params: Sequence[object] = ()
) -> list[tuple[object, ...]]:
    """`query` (`?` placeholders) on its own connection, committed."""
    if database_url is None:
        conn = sqlite3.connect(data_dir / SQLITE_FILE)
        try:
            rows = [tuple(row) for row in conn.execute(query, params).fetchall()]
            conn.commit()
            return rows
        finally:
            conn.close()
    pg = await asyncpg.connect(database_url)
    try:
        return [tuple(row) for row in await pg.fetch(numbered(query), *params)]
    finally:
        await pg.close()


async def table_names(database_url: str | None, data_dir: Path) -> set[str]:
    if database_url is None:
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        query = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    return {str(row[0]) for row in await fetch(database_url, data_dir, query)}


async def test_migrate_twice_applies_once(fresh_backend: str | None, tmp_path: Path) -> None:
    assert await migrate_store(fresh_backend, tmp_path) == VERSIONS
    assert await migrate_store(fresh_backend, tmp_path) == []
    rows = await fetch(
        fresh_backend, tmp_path, "SELECT version, name FROM schema_migrations ORDER BY version"
    )
    assert rows == [(version, name) for version, name, _ in migration_scripts("sqlite")]


def test_both_backends_have_the_same_migrations() -> None:
    sqlite = [(v, name) for v, name, _ in migration_scripts("sqlite")]
    postgres = [(v, name) for v, name, _ in migration_scripts("postgres")]
    assert sqlite == postgres
    # Numbers are handed out to parallel branches in advance, so one may land before
    # another: unique and increasing, not necessarily contiguous.
    versions = [v for v, _ in sqlite]
    assert versions == sorted(set(versions)) and versions[0] == 1


async def test_migration_creates_the_whole_record(
    fresh_backend: str | None, tmp_path: Path
) -> None:
    assert RECORD_TABLES.isdisjoint(await table_names(fresh_backend, tmp_path))
    await migrate_store(fresh_backend, tmp_path)
    tables = await table_names(fresh_backend, tmp_path)
    assert RECORD_TABLES | {"schema_migrations"} <= tables
    if fresh_backend is None:
        columns = {str(r[1]) for r in await fetch(None, tmp_path, "PRAGMA table_info(devices)")}
    else:
        columns = {
            str(r[0])
            for r in await fetch(
                fresh_backend,
                tmp_path,
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = 'devices'",
            )
        }
    assert columns == DEVICE_COLUMNS


async def test_second_migration_keeps_data(fresh_backend: str | None, tmp_path: Path) -> None:
    from tests.storage.conftest import stored_account

    await migrate_store(fresh_backend, tmp_path)
    store = await open_store(fresh_backend, tmp_path)
    try:
        account = await stored_account(store)
    finally:
        await store.close()
    assert await migrate_store(fresh_backend, tmp_path) == []
    store = await open_store(fresh_backend, tmp_path)
    try:
        assert await store.default_profile(account.id) == account.new.profile
    finally:
        await store.close()


async def test_concurrent_migrations_apply_once(fresh_backend: str | None, tmp_path: Path) -> None:
    """Several `devreg init`/`serve` processes starting at once on a fresh database."""
    runs = 4
    if fresh_backend is None:
        barrier = threading.Barrier(runs)

        def run() -> list[int]:
            barrier.wait()
            return asyncio.run(migrate_store(None, tmp_path))

        results = await asyncio.gather(*(asyncio.to_thread(run) for _ in range(runs)))
    else:
        results = await asyncio.gather(
            *(migrate_store(fresh_backend, tmp_path) for _ in range(runs))
        )
    assert sorted(results) == [[], [], [], VERSIONS]
    rows = await fetch(
        fresh_backend, tmp_path, "SELECT version FROM schema_migrations ORDER BY version"
    )
    assert rows == [(v,) for v in VERSIONS]


async def test_postgres_migrated_by_fixture_records_version_1(postgres_url: str) -> None:
    assert await migrate_store(postgres_url, Path("/nonexistent")) == []
    assert await table_names(postgres_url, Path("/nonexistent")) >= RECORD_TABLES


async def test_sqlite_file_is_wal(tmp_path: Path) -> None:
    await migrate_store(None, tmp_path)
    store = await open_store(None, tmp_path)
    try:
        # journal_mode=WAL is a property of the file: a plain connection sees it too
        plain = sqlite3.connect(tmp_path / SQLITE_FILE)
        try:
            assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            plain.close()
    finally:
        await store.close()


async def test_sqlite_store_connection_is_durable(tmp_path: Path) -> None:
    await migrate_store(None, tmp_path)
    store = await open_store(None, tmp_path)
    assert isinstance(store, SqliteDeviceStore)
    try:
        conn = store._conn  # synchronous and foreign_keys are per connection
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    finally:
        await store.close()


async def test_sqlite_url_names_the_file(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "db.sqlite3"
    url = f"sqlite://{target}"  # sqlite:///abs/path
    assert url.startswith("sqlite:///")
    assert await migrate_store(url, tmp_path / "data") == VERSIONS
    assert target.exists()
    assert not (tmp_path / "data" / SQLITE_FILE).exists()
    store = await open_store(url, tmp_path / "data")
    try:
        await store.ping()
    finally:
        await store.close()


async def test_unsupported_url_scheme_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme"):
        await migrate_store("mysql://localhost/devreg", tmp_path)


async def test_sqlite_store_without_durability_skips_the_fsync(tmp_path: Path) -> None:
    await migrate_store(None, tmp_path)
    store = await open_store(None, tmp_path, durable=False)
    assert isinstance(store, SqliteDeviceStore)
    try:
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_store_durability_is_the_commit_setting(postgres_url: str) -> None:
    for durable, expected in ((True, "on"), (False, "off")):
        store = await open_store(postgres_url, Path("/nonexistent"), durable=durable)
        try:
            rows = await store.runner().rows("SHOW synchronous_commit")  # type: ignore[attr-defined]
            assert rows[0][0] == expected
        finally:
            await store.close()


async def apply_scripts(
    fresh_backend: str | None, tmp_path: Path, scripts: list[tuple[int, str, str]]
) -> None:
    """These migrations, and only these, recorded as applied."""
    if fresh_backend is None:
        conn = sqlite3.connect(sqlite_path(None, tmp_path), isolation_level=None)
        conn.execute(
            "CREATE TABLE schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        )
        for version, name, script in scripts:
            for statement in split_statements(script):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, name))
        conn.close()
        return
    import asyncpg

    pg = await asyncpg.connect(fresh_backend)
    try:
        await pg.execute(
            "CREATE TABLE schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ)"
        )
        for version, name, script in scripts:
            await pg.execute(script)
            await pg.execute("INSERT INTO schema_migrations VALUES ($1, $2, now())", version, name)
    finally:
        await pg.close()


async def test_keys_made_before_0008_become_default_write_keys(
    fresh_backend: str | None, tmp_path: Path
) -> None:
    """An account and its key stored by the code before 0008, then 0008: the key reads
    back as a `default` key with scope write, no expiry, and the access mark starts at 0."""
    backend = "sqlite" if fresh_backend is None else "postgres"
    await apply_scripts(
        fresh_backend, tmp_path, [s for s in migration_scripts(backend) if s[0] < 8]
    )
    key_hash = bytes(32)
    account_id, key_id = bytes(range(16)), bytes(range(1, 17))
    for statement, params in (
        ("INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)", (account_id, "Old", NOW)),
        (
            "INSERT INTO api_keys (id, account_id, live_mode, key_hash, prefix, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key_id, account_id, True, key_hash, "sk_live_abcd", NOW),
        ),
    ):
        await fetch(fresh_backend, tmp_path, statement, params)
    assert await migrate_store(fresh_backend, tmp_path) == [v for v in VERSIONS if v >= 8]
    store = await open_store(fresh_backend, tmp_path)
    try:
        key = await store.find_api_key(key_hash)
        assert key is not None and (key.id, key.name, key.scope.value, key.expires_at) == (
            key_id, "default", "write", None,
        )  # fmt: skip
        assert await store.access_mark() == 0
    finally:
        await store.close()


async def test_an_upgraded_database_starts_from_its_revocations(
    fresh_backend: str | None, tmp_path: Path
) -> None:
    """Every migration but 0003, certificates revoked, then 0003: the mark counts them.
    (The later ones are applied first so that today's store code can write the rows.)"""
    backend = "sqlite" if fresh_backend is None else "postgres"
    scripts = [(v, name, text) for v, name, text in migration_scripts(backend) if v != 3]
    await apply_scripts(fresh_backend, tmp_path, scripts)
    # Revoked before the upgrade (the revoking statement is the same before and after).
    store = await open_store(fresh_backend, tmp_path)
    try:
        account = await stored_account(store)
        _, certs = await device_with(store, account, 3)
        for index, cert in enumerate(certs[:2]):
            await store.revoke_certificate(
                account.id, True, cert.id, "keyCompromise", NOW + index, TEST_ORIGIN
            )
    finally:
        await store.close()
    assert await migrate_store(fresh_backend, tmp_path) == [3]
    rows = await fetch(
        fresh_backend, tmp_path, "SELECT generation, latest_revoked_at FROM revocation_mark"
    )
    assert rows == [(2, NOW + 1)]
    store = await open_store(fresh_backend, tmp_path)
    try:
        assert await store.revocation_mark() == (2, NOW + 1)
        await store.revoke_certificate(
            account.id, True, certs[2].id, "superseded", NOW - 1, TEST_ORIGIN
        )
        assert await store.revocation_mark() == (3, NOW + 1)  # the latest stays the latest
    finally:
        await store.close()
