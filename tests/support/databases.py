"""A PostgreSQL database of a test's own, beside the session's shared one."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager


def admin(url: str, statement: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


@contextmanager
def fresh_database(server_url: str, prefix: str = "devreg_own_") -> Iterator[str]:
    """An empty, unmigrated database on the server of `server_url` (any database URL of
    it), dropped afterwards; yields its URL."""
    name = prefix + secrets.token_hex(4)
    admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield server_url.rpartition("/")[0] + "/" + name
    finally:
        admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
