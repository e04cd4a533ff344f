"""A PostgreSQL database of its own for a test, created empty and dropped afterwards."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest


def _run(url: str, statement: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(go())


@pytest.fixture
def empty_postgres_url(postgres_url: str) -> Iterator[str]:
    """A new, unmigrated database on the session's PostgreSQL server."""
    name = "devreg_cli_" + secrets.token_hex(4)
    _run(postgres_url, f'CREATE DATABASE "{name}"')
    yield postgres_url.rpartition("/")[0] + "/" + name
    _run(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
