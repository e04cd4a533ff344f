"""The per-credential limit holds across processes: `devreg serve --workers 2` with
DEVREG_REDIS_URL (the real Redis), one API key driven as fast as eight kept-alive
connections spread over both workers allow. Over the run the key gets its burst plus the
rate for the time it ran, within 10%: the limit of one process, not of two.

(Redis going away while serving is tests/reliability's.)"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.server import ECHO_DEVREG, create_account, start_server

RATE = 40.0  # requests per second per credential
BURST = 20
SECONDS = 3.0
CONNECTIONS_PER_WORKER = 4


@pytest.mark.redis
def test_the_limit_of_one_key_holds_across_two_workers(tmp_path: Path, redis_url: str) -> None:
    server = start_server(
        tmp_path / "data",
        workers=2,
        command=ECHO_DEVREG,  # GET /_test/tls names the process behind a connection
        redis_url=redis_url,
        rate_limit=RATE,
        rate_burst=BURST,
    )
    clients: list[tuple[int, httpx.Client]] = []
    try:
        key = create_account(server, "Limited")["live_key"]
        # Kept-alive connections, as many on each worker (the kernel deals new connections
        # out as it likes: open until both have enough, close the extra ones).
        per_pid: Counter[int] = Counter()
        for _ in range(100):
            client = httpx.Client(base_url=server.base_url, headers={"x-api-key": key}, timeout=30)
            pid = int(client.get("/_test/tls").json()["pid"])
            if per_pid[pid] < CONNECTIONS_PER_WORKER:
                per_pid[pid] += 1
                clients.append((pid, client))
            else:
                client.close()
            if len(per_pid) == 2 and min(per_pid.values()) == CONNECTIONS_PER_WORKER:
                break
        assert len(per_pid) == 2 and min(per_pid.values()) == CONNECTIONS_PER_WORKER, per_pid

        lock = threading.Lock()
        statuses: Counter[tuple[int, int]] = Counter()  # (worker pid, status) -> count
        first: list[float] = []
        last: list[float] = []
        start = threading.Barrier(len(clients))

        def hammer(pid_client: tuple[int, httpx.Client]) -> None:
            pid, client = pid_client
            start.wait()
            deadline = time.monotonic() + SECONDS
            seen: Counter[tuple[int, int]] = Counter()
            began = time.monotonic()
            while time.monotonic() < deadline:
                response = client.get("/iot/api/v2/division")
                seen[(pid, response.status_code)] += 1
                if response.status_code == 429:
                    assert response.json()["errors"][0]["code"] == "rate_limit_exceeded"
            ended = time.monotonic()
            # still the same connection, to the same process
            assert int(client.get("/_test/tls").json()["pid"]) == pid
            with lock:
                statuses.update(seen)
                first.append(began)
                last.append(ended)

        with ThreadPoolExecutor(len(clients)) as pool:
            list(pool.map(hammer, clients))
        elapsed = max(last) - min(first)
    finally:
        for _, client in clients:
            client.close()
        server.stop()

    allowed = sum(n for (_, status), n in statuses.items() if status == 200)
    refused = sum(n for (_, status), n in statuses.items() if status == 429)
    assert allowed + refused == sum(statuses.values()), statuses  # nothing else
    expected = BURST + RATE * elapsed
    by_worker = {pid: {s: n for (p, s), n in statuses.items() if p == pid} for pid in per_pid}
    print(f"\n{allowed} allowed, {refused} refused in {elapsed:.2f} s; expected {expected:.0f};"
          f" by worker {by_worker}")  # fmt: skip
    assert refused > allowed, "the clients did not drive the key over its limit"
    for pid in per_pid:  # both processes answered, both allowed and refused
        assert by_worker[pid].get(200, 0) > 0 and by_worker[pid].get(429, 0) > 0, by_worker
    assert abs(allowed - expected) <= 0.10 * expected, (allowed, expected)
