"""A PostgreSQL database of its own for a test, created empty and dropped afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.databases import fresh_database


@pytest.fixture
def empty_postgres_url(postgres_url: str) -> Iterator[str]:
    """A new, unmigrated database on the session's PostgreSQL server."""
    with fresh_database(postgres_url, "devreg_cli_") as url:
        yield url
