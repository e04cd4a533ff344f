"""Anonymous CRL fetches are limited per client address (issue 12 item 4), on a real
`devreg serve` with its default limits: past CRL_FETCH_BURST fetches, `/crl.pem` and
`/crl.der` (one bucket) answer 429 in dialect F's envelope with Retry-After, while another
address, the other public routes and the credentials' own limits are untouched; the
document says so."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devreg.auth.crl_fetches import CRL_FETCH_BURST, CRL_FETCH_RATE
from tests.reliability.support import PLAIN_TLS, f_error
from tests.support.server import RunningServer, start_server

# Linux answers on all of 127.0.0.0/8: a second client address on loopback.
OTHER_ADDRESS = "127.0.0.2"


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    running = start_server(tmp_path / "data", database_url=database_url)  # default limits
    try:
        yield running
    finally:
        running.stop()


def client(server: RunningServer, address: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address, verify=PLAIN_TLS)
    return httpx.Client(base_url=server.base_url, transport=transport, timeout=30)


def test_crl_fetches_over_the_limit_get_429_per_address(server: RunningServer) -> None:
    with client(server) as one:
        answers = [one.get(path) for path in ["/crl.pem", "/crl.der"] * CRL_FETCH_BURST]
        statuses = [answer.status_code for answer in answers]
        # The burst, and the odd fetch the refill allows while the loop runs; then refused.
        allowed = statuses.count(200)
        assert statuses[:CRL_FETCH_BURST] == [200] * CRL_FETCH_BURST, statuses
        assert allowed <= CRL_FETCH_BURST + 1 + CRL_FETCH_RATE * 5, statuses
        assert set(statuses) == {200, 429}
        refused = answers[statuses.index(429)]
        assert f_error(refused) == (
            429, "rate_limit", "too_many_requests",
            "Too many requests. Please retry after a short delay.",
        )  # fmt: skip
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= max(1, int(1 / CRL_FETCH_RATE) + 1)
        # Both forms are one bucket: the other one is refused too.
        assert one.get("/crl.pem").status_code == 429
        assert one.get("/crl.der").status_code == 429
        # The address is refused its CRL fetches only.
        for path in ["/healthz", "/ca.pem", "/openapi.json"]:
            assert one.get(path).status_code == 200, path
        with client(server, OTHER_ADDRESS) as other:
            assert other.get("/crl.der").status_code == 200
        # After Retry-After, one more fetch (bounded: a few seconds).
        time.sleep(retry_after)
        again = one.get("/crl.der")
        assert again.status_code == 200
        assert again.headers["content-type"] == "application/pkix-crl"


def test_the_document_names_the_429_of_the_crl_routes(server: RunningServer) -> None:
    with client(server) as one:
        document = one.get("/openapi.json").json()
    for path in ["/crl.pem", "/crl.der"]:
        refused = document["paths"][path]["get"]["responses"]["429"]
        assert str(CRL_FETCH_BURST) in refused["description"]
        assert "Retry-After" in refused["headers"]
        schema = refused["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorOut"}
