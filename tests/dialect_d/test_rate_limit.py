"""Rate limits on dialect D: per API key, 429 in `{"errors": [...]}` with Retry-After, and
a refused write writes nothing. The refill is tiny (one request per 20 s), so within a test
only the burst is available, however fast this machine is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.dialect_d.helpers import Account, all_devices, assert_errors, d_client, new_account
from tests.support.server import RunningServer, start_server

SLOW_RATE = 0.05
BURST = 5


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("d-ratelimit") / "data"


@pytest.fixture(scope="module")
def limited(data_dir: Path) -> Iterator[RunningServer]:
    running = start_server(data_dir, rate_limit=SLOW_RATE, rate_burst=BURST)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def limited_account(limited: RunningServer) -> Iterator[Account]:
    made = new_account(limited)
    try:
        yield made
    finally:
        made.close()


def assert_too_many(response: httpx.Response) -> None:
    message = assert_errors(response, 429, "rate_limit_exceeded", mentions=["retry"])
    assert message == "Too many requests. Please retry after a short delay."
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 1 / SLOW_RATE, retry_after


def test_over_the_burst_is_429_and_refused_writes_write_nothing(
    limited_account: Account, data_dir: Path
) -> None:
    client = limited_account.live
    created = client.post("/device", json={"device_identifier": "first"})
    assert created.status_code == 201, created.text
    path = f"/device/{created.json()['id']}"
    assert client.get(path).status_code == 200
    assert client.put(path, json={"device_identifier": "second"}).status_code == 201
    assert client.get("/device").status_code == 200
    assert client.post("/division", json={"name": "North"}).status_code == 201
    # The bucket is empty: reads and writes alike are refused.
    assert_too_many(client.post("/device", json={"device_identifier": "late"}))
    assert_too_many(client.put(path, json={"device_identifier": "late"}))
    assert_too_many(client.put(f"{path}/disable"))
    assert_too_many(client.delete(path))
    assert_too_many(client.post(f"{path}/certificate", json={"generate_key": True}))
    assert_too_many(client.post("/division", json={"name": "South"}))
    assert_too_many(client.get(path))
    # Seen through an unlimited server on the same data: nothing of that was written.
    observer = start_server(data_dir, rate_limit=0)
    try:
        with d_client(observer, limited_account.live_key) as fresh:
            devices = all_devices(fresh)
            assert [(d["device_identifier"], d["status"]) for d in devices] == [
                ("second", "ACTIVE")
            ]
            certificates = fresh.get(f"{path}/certificate").json()
            assert certificates == {"limit": 20, "offset": 0, "total": 0, "records": []}
            names = [d["name"] for d in fresh.get("/division").json()["records"]]
            assert names == ["Default", "North"]
    finally:
        observer.stop()


def test_each_key_has_its_own_bucket(limited: RunningServer, limited_account: Account) -> None:
    live = [limited_account.live.get("/device").status_code for _ in range(BURST + 1)]
    assert live == [200] * BURST + [429]
    test = [limited_account.test.get("/device").status_code for _ in range(BURST + 1)]
    assert test == [200] * BURST + [429]
    other = new_account(limited, "Globex")
    try:
        assert [other.live.get("/device").status_code for _ in range(BURST)] == [200] * BURST
    finally:
        other.close()
    assert_too_many(limited_account.live.get("/device"))


def test_guessing_api_keys_is_limited_per_address(tmp_path: Path) -> None:
    """Bad `x-api-key`s are 401 and count against the client's address, in the same bucket
    as failed logins on dialect F; over the limit the address is refused before any key
    is looked up (tests/auth/test_failures.py: other addresses are not slowed)."""
    server = start_server(tmp_path / "data", rate_limit=SLOW_RATE, rate_burst=BURST)
    try:
        account = new_account(server)
        try:
            with d_client(server, "sk_live_" + "x" * 43) as guesser:
                statuses = [guesser.get("/device").status_code for _ in range(BURST - 1)]
                assert statuses == [401] * (BURST - 1)
                # a failed login on dialect F fills the same bucket
                login = httpx.get(
                    server.base_url + "/login", auth=(account.account_id, "sk_live_no")
                )
                assert login.status_code == 403, login.text
                assert_too_many(guesser.get("/device"))
                assert_too_many(account.live.get("/device"))  # refused before the lookup
        finally:
            account.close()
    finally:
        server.stop()
