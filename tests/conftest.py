"""Shared fixtures: real SQLite files, a real PostgreSQL database, real Redis, a real
`devreg serve` subprocess on a free port, and the real ASGI app in-process (`app_client`).

Services come from DEVREG_TEST_POSTGRES_URL / DEVREG_TEST_REDIS_URL (defaults: this
machine's). When one is unreachable its tests are skipped with the reason, unless
DEVREG_REQUIRE_SERVICES=1 (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from devreg.core.store import DeviceStore
from devreg.storage import migrate_store, open_store
from tests.support import inprocess
from tests.support.server import STORES, RunningServer, create_account, start_server

POSTGRES_ADMIN_URL = os.environ.get(
    "DEVREG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("DEVREG_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("DEVREG_REQUIRE_SERVICES") == "1"


def service_missing(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (DEVREG_REQUIRE_SERVICES=1: this suite must run)")
    pytest.skip(reason)


def _with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped afterwards."""
    import asyncpg

    name = "devreg_test_" + secrets.token_hex(4)

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        service_missing(f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}: {exc}")
    url = _with_database(POSTGRES_ADMIN_URL, name)
    asyncio.run(migrate_store(url, Path("/nonexistent")))
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        service_missing(f"Redis unreachable at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """The database URL of each store in turn (None: SQLite in the data directory)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return None


@pytest.fixture
async def store(backend: str | None, tmp_path: Path) -> AsyncIterator[DeviceStore]:
    await migrate_store(backend, tmp_path)
    opened = await open_store(backend, tmp_path)
    yield opened
    await opened.close()


@pytest.fixture
def server(backend: str | None, tmp_path: Path) -> Iterator[RunningServer]:
    """`devreg serve` on a free port, on each store in turn, rate limits off."""
    running = start_server(tmp_path / "data", database_url=backend, rate_limit=0)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def account(server: RunningServer) -> dict[str, str]:
    return create_account(server, "Acme")


@pytest.fixture(params=STORES)
def app_backend(request: pytest.FixtureRequest) -> str | None:
    """The database URL of each store in turn for `app_client` (None: SQLite in its data
    directory); the PostgreSQL case carries the `postgres` marker, as STORES does."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return None


@pytest.fixture
async def app_client(app_backend: str | None, tmp_path: Path) -> AsyncIterator[inprocess.AppClient]:
    """The real app in-process (tests/support/inprocess.py) on each store in turn, with a
    fresh account (`.account`), a client without credentials (`.client`), `.d()` and `.f()`
    clients of its keys and `.token()`: for handler tests that need a request and its
    answer only. Rate limits, access log and retention off."""
    async with inprocess.app_client(tmp_path / "data", app_backend) as made:
        yield made
