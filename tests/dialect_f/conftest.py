"""One `devreg serve` per module and store (tests isolate themselves by account)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dialect_f.helpers import Tenant, new_tenant
from tests.support.server import STORES, RunningServer, store_server


@pytest.fixture(scope="module", params=STORES)
def f_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with store_server(request, tmp_path_factory) as running:
        yield running


@pytest.fixture
def tenant(f_server: RunningServer) -> Iterator[Tenant]:
    """A fresh account on the module's server, logged in with its live and test keys."""
    made = new_tenant(f_server)
    try:
        yield made
    finally:
        made.close()
