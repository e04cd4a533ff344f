"""One `devreg serve` per module and store (tests isolate themselves by account)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dialect_f.helpers import Tenant, new_tenant
from tests.support.server import RunningServer, start_server


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def f_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    running = start_server(
        tmp_path_factory.mktemp(request.param) / "data", database_url=database_url, rate_limit=0
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def tenant(f_server: RunningServer) -> Iterator[Tenant]:
    """A fresh account on the module's server, logged in with its live and test keys."""
    made = new_tenant(f_server)
    try:
        yield made
    finally:
        made.close()
