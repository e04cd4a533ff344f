"""One `devreg serve` per store with its client-auth and EST listeners for the change log's
HTTP tests; each test gets a fresh account seen through both dialects (the conformance
suite's `Vendors`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devreg.storage import migrate_store, open_store
from devreg.storage.base import SqlDeviceStore
from tests.conformance.conftest import Vendors, new_vendors
from tests.support.databases import fresh_database
from tests.support.server import STORES, RunningServer, start_server


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
    vendors = new_vendors(log_server, tmp_path)
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
def own_backend(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """A database of this test's own (SQLite in tmp_path, or a fresh PostgreSQL database):
    for tests that tamper with the log or count its entries from the first."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_database(request.getfixturevalue("postgres_url"), "devreg_log_") as url:
        yield url


@pytest.fixture
async def own_store(own_backend: str | None, tmp_path: Path) -> AsyncIterator[SqlDeviceStore]:
    await migrate_store(own_backend, tmp_path)
    store = await open_store(own_backend, tmp_path)
    yield store
    await store.close()
