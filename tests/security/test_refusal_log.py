"""Issue 12 item 13: a client hammering past its rate limit cannot flood the log. Against a
real `devreg serve` (limit 1/s, burst 5, summaries every second instead of ten), two
clients on two loopback addresses each get hundreds of 429s: per address the first
refusal of a burst is an access-log line as usual, the rest are counted into one summary
line per interval ("N more 429s from ADDR in the last S s"), and the lines account for
every 429 answered. Requests that are not 429s (`/healthz` between the refused ones,
another credential's) are still logged one line each."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.server import RunningServer, create_account, start_server

API = "/iot/api/v2"
ADDRESSES = ("127.0.0.1", "127.0.0.2")  # both loopback: two clients, two addresses
REQUESTS = 400  # per address, nearly all refused
HEALTH_EVERY = 20  # a /healthz (never limited) after every 20 refused requests
INTERVAL = 1  # DEVREG_RATE_LIMIT_LOG_INTERVAL of the server under test (default 10 s)
# One access-log line: `ADDR:PORT "METHOD PATH" STATUS ...`; one summary line.
ACCESS_LINE = re.compile(r' devreg\.access (\S+):\d+ "(\S+) (\S+)" (\d{3}) ')
SUMMARY_LINE = re.compile(r" devreg\.access (\d+) more 429s from (\S+) in the last ")


@dataclass
class Logged:
    """What the server's access log says."""

    lines: list[tuple[str, str, str, int]]  # (address, method, path, status)
    summaries: Counter[str]  # address -> the 429s summed up
    summary_lines: Counter[str]  # address -> summary lines

    @classmethod
    def read(cls, server: RunningServer) -> Logged:
        lines, summaries, summary_lines = [], Counter[str](), Counter[str]()
        for line in server.log().splitlines():
            if found := ACCESS_LINE.search(line):
                address, method, path, status = found.groups()
                lines.append((address, method, path, int(status)))
            elif found := SUMMARY_LINE.search(line):
                summaries[found[2]] += int(found[1])
                summary_lines[found[2]] += 1
        return cls(lines, summaries, summary_lines)

    def count(self, address: str, status: int, path: str | None = None) -> int:
        return sum(
            1
            for line in self.lines
            if line[0] == address and line[3] == status and path in (None, line[2])
        )

    def accounted(self, address: str) -> int:
        """The 429s of `address` the log accounts for: lines plus summed-up ones."""
        return self.count(address, 429) + self.summaries[address]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path / "data", rate_limit=1, rate_burst=5, rate_limit_log_interval=INTERVAL
    )
    try:
        yield running
    finally:
        running.stop()


def client(server: RunningServer, address: str, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url,
        headers={"x-api-key": key},
        transport=httpx.HTTPTransport(local_address=address),
        timeout=30,
    )


def test_a_burst_of_429s_is_a_few_lines_that_account_for_every_one(
    server: RunningServer,
) -> None:
    started = Logged.read(server)  # the start's own /healthz probes
    hammering = create_account(server, "Hammer")["live_key"]
    quiet = create_account(server, "Quiet")["live_key"]
    refused: Counter[str] = Counter()
    health: Counter[str] = Counter()
    for address in ADDRESSES:
        with client(server, address, hammering) as api:
            for n in range(1, REQUESTS + 1):
                status = api.get(f"{API}/division").status_code
                assert status in (200, 429), status
                refused[address] += status == 429
                if n % HEALTH_EVERY == 0:
                    assert api.get("/healthz").status_code == 200
                    health[address] += 1
    with client(server, ADDRESSES[0], quiet) as api:  # another credential, within its limit
        for _ in range(3):
            assert api.get(f"{API}/division").status_code == 200

    # Summaries are written an interval after a burst's first refusal: wait for them (a
    # bound on the wait, not a pass/fail timing).
    deadline = time.monotonic() + 10 * INTERVAL + 10
    logged = Logged.read(server)
    while any(logged.accounted(a) < refused[a] for a in ADDRESSES):
        assert time.monotonic() < deadline, (refused, logged.summaries, logged.count)
        time.sleep(0.2)
        logged = Logged.read(server)

    for address in ADDRESSES:
        assert refused[address] >= REQUESTS // 2, refused  # most were refused (1/s)
        # Every 429 is accounted for, exactly: logged alone or summed up.
        assert logged.accounted(address) == refused[address], (address, logged.summaries)
        # ... in a bounded number of lines (before: one line per 429).
        lines = logged.count(address, 429) + logged.summary_lines[address]
        assert 2 <= lines <= refused[address] // 10, (address, lines, refused[address])
        # The burst's first refusal is an access-log line as usual.
        assert logged.count(address, 429, f"{API}/division") >= 1
        # Requests that were not refused are still logged one line each.
        assert logged.count(address, 200, "/healthz") == health[address] + started.count(
            address, 200, "/healthz"
        )
        assert logged.count(address, 200, f"{API}/division") == REQUESTS - refused[address] + (
            3 if address == ADDRESSES[0] else 0
        )
    # Nothing secret in a summary line: an address and a count only.
    assert hammering not in server.log() and quiet not in server.log()
