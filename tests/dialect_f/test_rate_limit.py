"""Rate limits per credential: seed 000's 429 after the burst, one bucket per key (and, for
failed logins, per client address), shared across worker processes through Redis, off at 0.

The refill rates are tiny (one request per 20 s) so that the counts below do not depend on
how fast this machine sends requests: within a test only the burst is available."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.dialect_f.helpers import (
    Tenant,
    anonymous_client,
    assert_error,
    bearer_client,
    list_all,
    new_tenant,
)
from tests.support.server import RunningServer, start_server

SLOW_RATE = 0.05  # one request per 20 seconds: no refill during a test
BURST = 5
TOO_MANY = {
    "object": "error",
    "type": "rate_limit",
    "code": "too_many_requests",
    "message": "Too many requests. Please retry after a short delay.",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ratelimit") / "data"


@pytest.fixture(scope="module")
def limited(data_dir: Path) -> Iterator[RunningServer]:
    running = start_server(data_dir, rate_limit=SLOW_RATE, rate_burst=BURST)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def unlimited(limited: RunningServer, data_dir: Path) -> Iterator[RunningServer]:
    """Limits off, with a burst of one to show the burst does not matter then. It shares
    the limited server's data directory, so it also shows what the limited one wrote."""
    running = start_server(data_dir, rate_limit=0, rate_burst=1)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def tenant(limited: RunningServer) -> Iterator[Tenant]:
    made = new_tenant(limited)  # two successful logins: they cost nothing
    try:
        yield made
    finally:
        made.close()


def assert_too_many(response: httpx.Response, max_wait: float) -> int:
    body = assert_error(response, 429, "rate_limit", "too_many_requests")
    # live_mode and context vary by caller and endpoint (assert_error checks their types)
    unvarying = {k: v for k, v in body.items() if k not in {"time_created", "live_mode", "context"}}
    assert unvarying == TOO_MANY
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= max_wait
    return int(retry_after)


def test_the_burst_is_served_then_429_with_retry_after(tenant: Tenant) -> None:
    statuses = [tenant.live.get("/devices").status_code for _ in range(BURST)]
    assert statuses == [200] * BURST
    for _ in range(3):
        assert_too_many(tenant.live.get("/devices"), max_wait=1 / SLOW_RATE)


def test_every_operation_counts_and_refused_writes_write_nothing(
    tenant: Tenant, unlimited: RunningServer
) -> None:
    created = tenant.live.post("/devices", json={"reference_id": "first"})
    assert created.status_code == 201
    device_path = f"/devices/{created.json()['id']}"
    assert tenant.live.get(device_path).status_code == 200
    assert tenant.live.patch(device_path, json={"reference_id": "second"}).status_code == 200
    assert tenant.live.get("/devices").status_code == 200
    assert tenant.live.post("/devices", json={"reference_id": "other"}).status_code == 201
    # The bucket is empty now: every kind of request is refused, writes included.
    assert_too_many(tenant.live.post("/devices", json={"reference_id": "late"}), 1 / SLOW_RATE)
    assert_too_many(tenant.live.patch(device_path, json={"reference_id": "late"}), 1 / SLOW_RATE)
    assert_too_many(tenant.live.delete(device_path), 1 / SLOW_RATE)
    assert_too_many(tenant.live.get(device_path), 1 / SLOW_RATE)
    # Seen through the unlimited server on the same data: the refused requests wrote nothing.
    with anonymous_client(unlimited) as anon:
        login = anon.get("/login", auth=(tenant.account_id, tenant.live_key))
        assert login.status_code == 200, login.text
    with bearer_client(unlimited, login.json()["bearer_token"]) as observer:
        refs = sorted(d["reference_id"] for d in list_all(observer))
    assert refs == ["other", "second"]


def test_live_and_test_keys_and_accounts_have_their_own_buckets(
    limited: RunningServer, tenant: Tenant
) -> None:
    live = [tenant.live.get("/devices").status_code for _ in range(BURST + 2)]
    assert live == [200] * BURST + [429, 429]
    test = [tenant.test.get("/devices").status_code for _ in range(BURST + 2)]
    assert test == [200] * BURST + [429, 429]
    other = new_tenant(limited, "Globex")
    try:
        assert [other.live.get("/devices").status_code for _ in range(BURST)] == [200] * BURST
    finally:
        other.close()
    assert_too_many(tenant.live.get("/devices"), 1 / SLOW_RATE)


def test_a_new_token_for_the_same_key_does_not_reset_the_bucket(tenant: Tenant) -> None:
    assert [tenant.live.get("/devices").status_code for _ in range(BURST)] == [200] * BURST
    again = tenant.anon.get("/login", auth=(tenant.account_id, tenant.live_key))
    assert again.status_code == 200, again.text
    with bearer_client(tenant.server, again.json()["bearer_token"]) as fresh:
        assert_too_many(fresh.get("/devices"), 1 / SLOW_RATE)


def test_guessing_keys_at_login_is_limited_per_address(tmp_path: Path) -> None:
    """Failed logins count against the client's address; once over the limit that address
    is refused before any key is checked. The account itself is not locked: anyone who
    knows its id cannot lock its owner out."""
    server = start_server(tmp_path / "data", rate_limit=SLOW_RATE, rate_burst=BURST)
    try:
        tenant = new_tenant(server)  # successful logins cost nothing
        try:
            wrong = (tenant.account_id, "sk_live_not-the-key")
            statuses = [tenant.anon.get("/login", auth=wrong).status_code for _ in range(BURST + 2)]
            assert statuses == [403] * BURST + [429, 429]
            right = (tenant.account_id, tenant.live_key)
            assert_too_many(tenant.anon.get("/login", auth=right), 1 / SLOW_RATE)
            # The tokens the account already holds still work: only this address is slowed.
            assert tenant.live.get("/devices").status_code == 200
        finally:
            tenant.close()
    finally:
        server.stop()


def test_retry_after_is_honest(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", rate_limit=1, rate_burst=2)
    try:
        tenant = new_tenant(server)
        try:
            assert [tenant.live.get("/devices").status_code for _ in range(2)] == [200, 200]
            wait = assert_too_many(tenant.live.get("/devices"), max_wait=1)
            time.sleep(wait)  # doing what the header says is enough
            assert tenant.live.get("/devices").status_code == 200
        finally:
            tenant.close()
    finally:
        server.stop()


def test_limit_zero_never_limits(limited: RunningServer, unlimited: RunningServer) -> None:
    tenant = new_tenant(unlimited)
    try:
        statuses = Counter(tenant.live.get("/devices").status_code for _ in range(300))
        statuses.update(tenant.live.post("/devices").status_code for _ in range(50))
        statuses.update(
            tenant.anon.get("/login", auth=(tenant.account_id, tenant.test_key)).status_code
            for _ in range(50)
        )
        assert statuses == Counter({200: 350, 201: 50})
        assert "retry-after" not in tenant.live.get("/devices").headers
    finally:
        tenant.close()


@pytest.mark.redis
def test_redis_shares_the_limit_across_worker_processes(tmp_path: Path, redis_url: str) -> None:
    server = start_server(
        tmp_path / "data", workers=2, redis_url=redis_url, rate_limit=SLOW_RATE, rate_burst=BURST
    )
    try:
        tenant = new_tenant(server)
        tenant.close()
        lock = threading.Lock()
        statuses: Counter[int] = Counter()

        def burst_of_connections(_: int) -> None:
            for _ in range(5):  # a new connection per request: the workers share them out
                with bearer_client(server, tenant.live_token) as client:
                    response = client.get("/devices")
                with lock:
                    statuses[response.status_code] += 1
                if response.status_code == 429:
                    assert_too_many(response, 1 / SLOW_RATE)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(burst_of_connections, range(8)))
        # 40 requests over two processes: the burst once, not once per process.
        assert statuses == Counter({200: BURST, 429: 40 - BURST})
        pids = {
            line.rsplit("[", 1)[1].rstrip("]")
            for line in server.log().splitlines()
            if "Started server process" in line
        }
        assert len(pids) == 2, server.log()
    finally:
        server.stop()
