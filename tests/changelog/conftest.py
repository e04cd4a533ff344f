"""One `devreg serve` per store with its client-auth and EST listeners for the change log's
HTTP tests; each test gets a fresh account seen through both dialects (the conformance
suite's `Vendors`)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devreg.storage import migrate_store, open_store
from devreg.storage.base import SqlDeviceStore
from tests.conformance.conftest import Vendors
from tests.dialect_d.helpers import Account, d_client
from tests.dialect_f.helpers import anonymous_client, bearer_client, login
from tests.support.server import STORES, RunningServer, create_account, start_server


@pytest.fixture(scope="session", params=STORES)
def log_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    running = start_server(
        tmp_path_factory.mktemp(f"changelog-{request.param}") / "data",
        database_url=database_url, rate_limit=0, mtls=True, est=True,
    )  # fmt: skip
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def world(log_server: RunningServer, tmp_path: Path) -> Iterator[Vendors]:
    made = create_account(log_server, "Acme")
    anon = anonymous_client(log_server)
    try:
        live = login(anon, made["account_id"], made["live_key"])
        test = login(anon, made["account_id"], made["test_key"])
    finally:
        anon.close()
    vendors = Vendors(
        server=log_server,
        d=Account(
            server=log_server, account_id=made["account_id"], live_key=made["live_key"],
            test_key=made["test_key"], live=d_client(log_server, made["live_key"]),
            test=d_client(log_server, made["test_key"]), anon=d_client(log_server),
        ),
        f_live=bearer_client(log_server, live),
        f_test=bearer_client(log_server, test),
        directory=tmp_path,
    )  # fmt: skip
    try:
        yield vendors
    finally:
        vendors.close()


def log_after(client: httpx.Client, after_seq: int = 0) -> list[dict[str, Any]]:
    """Every entry of the client's account (its key's mode and the shared ones) after
    `after_seq`, following the cursor."""
    entries: list[dict[str, Any]] = []
    while True:
        page = client.get("/audit-log", params={"after_seq": after_seq, "limit": 1000})
        assert page.status_code == 200, page.text
        body = page.json()
        entries += body["records"]
        if body["next_after_seq"] is None:
            return entries
        after_seq = body["next_after_seq"]


def last_seq(client: httpx.Client) -> int:
    entries = log_after(client)
    return entries[-1]["seq"] if entries else 0


@pytest.fixture(params=STORES)
def own_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """A database of this test's own (SQLite in tmp_path, or a fresh PostgreSQL database):
    for tests that tamper with the log or count its entries from the first."""
    if request.param == "sqlite":
        yield None
        return
    import asyncpg

    base: str = request.getfixturevalue("postgres_url")
    name = "devreg_log_" + secrets.token_hex(4)

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rpartition("/")[0] + "/" + name
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def own_store(own_backend: str | None, tmp_path: Path) -> AsyncIterator[SqlDeviceStore]:
    await migrate_store(own_backend, tmp_path)
    store = await open_store(own_backend, tmp_path)
    yield store
    await store.close()
