"""One `devreg serve` per module and store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.server import STORES, RunningServer, store_server


@pytest.fixture(scope="module", params=STORES)
def module_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with store_server(request, tmp_path_factory) as running:
        yield running
