"""One `devreg serve` per module and store; each test gets its own account (made with the
CLI), which is all the isolation the tests need."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dialect_d.helpers import Account, new_account
from tests.support.server import STORES, RunningServer, store_server


@pytest.fixture(scope="module", params=STORES)
def d_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with store_server(request, tmp_path_factory) as running:
        yield running


@pytest.fixture
def account(d_server: RunningServer) -> Iterator[Account]:
    """A fresh account on the module's server, with a client for each of its keys."""
    made = new_account(d_server, "Acme")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def other(d_server: RunningServer) -> Iterator[Account]:
    made = new_account(d_server, "Globex")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def shared(d_server: RunningServer) -> Iterator[Account]:
    """One account for a module's tests that change nothing (each checks it)."""
    made = new_account(d_server, "Shared")
    try:
        yield made
    finally:
        made.close()
