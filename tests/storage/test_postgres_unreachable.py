"""PostgreSQL unreachable: the store still opens (it connects on demand), so a worker started
during an outage comes up; every call then raises StoreUnavailable (a 503 in both dialects),
and so does a migration, naming the database. (The outage itself, a real server stopped and
started under load, is in tests/reliability/test_outages.py.)"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from devreg.core.store import StoreUnavailable
from devreg.storage import migrate_store
from devreg.storage.postgres import PostgresDeviceStore


def refused_url() -> str:
    """A port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/devreg"


async def test_a_store_opened_while_postgres_is_down_opens_and_answers_unavailable() -> None:
    store = await PostgresDeviceStore.open(refused_url())
    try:
        for _ in range(2):  # every call, not only the first
            with pytest.raises(StoreUnavailable, match="database unavailable"):
                await store.ping()
        with pytest.raises(StoreUnavailable, match="database unavailable"):
            async with store.transaction() as tx:
                await tx.run("SELECT 1")
    finally:
        await store.close()


async def test_migrating_while_postgres_is_down_says_the_database_is_unavailable(
    tmp_path: Path,
) -> None:
    with pytest.raises(StoreUnavailable, match=r"database unavailable.*Connect"):
        await migrate_store(refused_url(), tmp_path)
