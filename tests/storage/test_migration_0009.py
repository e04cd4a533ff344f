"""Migration 0009 (operators) on both backends: applied to a database of 0008, its tables
and their rules (role, account or platform admin, unique email), and the store reading
what it wrote."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from devreg.storage import migrate_store, open_store
from devreg.storage.migrations import migration_scripts
from devreg.storage.operators import operator_store
from tests.storage import test_migrations
from tests.storage.conftest import NOW
from tests.storage.test_migrations import apply_scripts, fetch, table_names

fresh_backend = test_migrations.fresh_backend  # the fixtures of 0008's tests
fresh_postgres = test_migrations.fresh_postgres

TABLES = {"operators", "operator_sessions", "operator_login_failures"}
INSERT = (
    "INSERT INTO operators (id, email, role, account_id, password_hash, password_changed_at,"
    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


async def test_0009_upgrades_a_database_of_0008(fresh_backend: str | None, tmp_path: Path) -> None:
    backend = "sqlite" if fresh_backend is None else "postgres"
    await apply_scripts(
        fresh_backend, tmp_path, [s for s in migration_scripts(backend) if s[0] < 9]
    )
    assert TABLES.isdisjoint(await table_names(fresh_backend, tmp_path))
    account_id = bytes(range(16))
    await fetch(
        fresh_backend, tmp_path,
        "INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)", (account_id, "Old", NOW),
    )  # fmt: skip
    assert await migrate_store(fresh_backend, tmp_path) == [9]
    assert await table_names(fresh_backend, tmp_path) >= TABLES

    refused = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)
    good = (bytes([1]) * 16, "ann@example.com", "viewer", account_id, "$argon2id$x", NOW, NOW)
    await fetch(fresh_backend, tmp_path, INSERT, good)
    for bad in (
        (bytes([2]) * 16, "ann@example.com", "admin", None, "h", NOW, NOW),  # email taken
        (bytes([3]) * 16, "bob@example.com", "root", account_id, "h", NOW, NOW),  # no such role
        (bytes([4]) * 16, "cy@example.com", "viewer", None, "h", NOW, NOW),  # no account
    ):
        with pytest.raises(refused):
            await fetch(fresh_backend, tmp_path, INSERT, bad)
    platform = (bytes([6]) * 16, "root@example.com", "admin", None, "h", NOW, NOW)
    await fetch(fresh_backend, tmp_path, INSERT, platform)  # an admin of every account

    store = await open_store(fresh_backend, tmp_path)
    try:
        operators = operator_store(store)
        found = await operators.operator_by_email("ann@example.com")
        assert found is not None and (found.role.value, found.account_id) == ("viewer", account_id)
        assert {op.email for op in await operators.operators()} == {
            "ann@example.com", "root@example.com",
        }  # fmt: skip
    finally:
        await store.close()
