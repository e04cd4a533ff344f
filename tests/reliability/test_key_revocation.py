"""Issue 15's promise, with real processes: from the moment `revoke` returns (the CLI's or
dialect D's `PUT /api-key/{id}/revoke`), the key and every bearer token made from it are
refused by every devreg process, on connections already open, and a disabled account's
likewise until it is enabled. Shown with `devreg serve --workers 2` on SQLite and with two
`devreg serve` processes on one PostgreSQL (two hosts).

Each round makes a fresh key, opens keep-alive connections to every process (both
workers holding some), warms them with a dialect F token and a dialect D key so that every
process has the key's state cached, and keeps them all busy while the key is revoked.
Every request is timed when it was sent: none sent after the revocation returned may be
answered 200, and the first request on every connection after it is refused."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.reliability.support import (
    D_BASE,
    Tenant,
    api_client,
    new_tenant,
    spread_clients,
    wait_for_workers,
)
from tests.support.server import RunningServer, login, run_cli, start_server

CLIENTS_PER_PROCESS = 8  # of each dialect
ROUNDS = 6
F_PROBE = "/devices?limit=1"
D_PROBE = "/device?limit=1"


@dataclass
class Fleet:
    """The devreg processes one database serves, and an account on it."""

    servers: list[RunningServer]
    tenant: Tenant
    workers: dict[int, list[int]]  # per server's port: its worker pids (SQLite: 2)

    @property
    def env(self) -> dict[str, str]:
        return self.servers[0].env


def _port(server: RunningServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


@pytest.fixture(
    scope="module",
    params=["sqlite-2-workers", pytest.param("postgres-2-hosts", marks=pytest.mark.postgres)],
)
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp(request.param)
    servers: list[RunningServer] = []
    try:
        if request.param.startswith("sqlite"):
            servers.append(start_server(base / "data", workers=2, rate_limit=0))
            workers = {_port(servers[0]): wait_for_workers(servers[0], 2)}
        else:
            url = request.getfixturevalue("postgres_url")
            # Two hosts: one database, the same data directory's keys (copied, in real life)
            for _ in range(2):
                servers.append(start_server(base / "data", database_url=url, rate_limit=0))
            workers = {_port(s): [s.process.pid] for s in servers}
        yield Fleet(servers, new_tenant(servers[0]), workers)
        for server in servers:
            log = server.log()
            assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]
    finally:
        for server in servers:
            server.stop()


@dataclass
class Probe:
    """One connection's requests: when each was sent, and its status."""

    client: httpx.AsyncClient
    path: str
    seen: list[tuple[float, int]] = field(default_factory=list)

    async def once(self) -> int:
        sent = time.monotonic()
        status = (await self.client.get(self.path)).status_code
        self.seen.append((sent, status))
        return status

    async def hammer(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.once()


async def open_probes(fleet: Fleet, secret: str) -> list[Probe]:
    """Connections to every process (to both of a server's workers), per dialect."""
    probes: list[Probe] = []
    for server in fleet.servers:
        token = await asyncio.to_thread(login, server, fleet.tenant.account_id, secret)
        port = _port(server)
        for base, headers, path in (
            (server.base_url, {"authorization": f"Bearer {token}"}, F_PROBE),
            (server.base_url + D_BASE, {"x-api-key": secret}, D_PROBE),
        ):

            def make(base: str = base, headers: dict[str, str] = headers) -> httpx.AsyncClient:
                return api_client(base, headers)

            warm = path  # a request with the credential: its state cached by that process
            clients = await spread_clients(
                make, CLIENTS_PER_PROCESS, warm, fleet.workers[port], port
            )
            probes += [Probe(client, path) for client in clients]
    for probe in probes:
        assert await probe.once() == 200
    return probes


def cli_json(fleet: Fleet, *args: str) -> dict[str, object]:
    done = run_cli(fleet.env, *args, "--json")
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


async def make_key(fleet: Fleet) -> tuple[str, str]:
    made = await asyncio.to_thread(
        cli_json, fleet, "key", "create", "--account", fleet.tenant.account_id,
        "--mode", "live", "--name", "leaky",
    )  # fmt: skip
    return str(made["secret"]), str(made["key_id"])


async def refused_from_return(
    probes: list[Probe], end: asyncio.Future[float], refused: set[int]
) -> None:
    """Keeps every probe busy until `end` (the moment the call returned) is known, then
    checks: no 200 for a request sent after it; the next request on each connection is
    refused with one of `refused`."""
    stop = asyncio.Event()
    hammers = [asyncio.ensure_future(probe.hammer(stop)) for probe in probes]
    returned = await end
    await asyncio.sleep(0.05)  # requests in flight at that moment land, then stop
    stop.set()
    await asyncio.gather(*hammers)
    late = [(p.path, sent - returned, status) for p in probes for sent, status in p.seen
            if sent > returned and status == 200]  # fmt: skip
    assert late == [], f"accepted after the call returned: {late[:5]}"
    after = [await probe.once() for probe in probes]
    assert set(after) <= refused, after


async def timed(call: asyncio.Future[object]) -> float:
    await call
    return time.monotonic()


async def test_a_revoked_key_and_its_tokens_are_refused_everywhere_once_revoke_returns(
    fleet: Fleet,
) -> None:
    manager = api_client(fleet.servers[-1].base_url + D_BASE, fleet.tenant.d_headers)
    try:
        for round_ in range(ROUNDS):
            secret, key_id = await make_key(fleet)
            probes = await open_probes(fleet, secret)
            try:
                if round_ % 2:  # the CLI
                    call = asyncio.ensure_future(
                        asyncio.to_thread(cli_json, fleet, "key", "revoke", key_id)
                    )
                else:  # dialect D, on the last process (the others learn it from the mark)
                    call = asyncio.ensure_future(manager.put(f"/api-key/{key_id}/revoke"))
                end = asyncio.ensure_future(timed(call))
                await refused_from_return(probes, end, {401, 403})
                result = call.result()
                if isinstance(result, httpx.Response):
                    assert result.status_code == 200, result.text
            finally:
                await asyncio.gather(*(probe.client.aclose() for probe in probes))
    finally:
        await manager.aclose()


async def test_a_disabled_account_is_refused_everywhere_once_disable_returns_and_back_on_enable(
    fleet: Fleet,
) -> None:
    secret, _ = await make_key(fleet)
    for _ in range(2):
        probes = await open_probes(fleet, secret)
        try:
            call = asyncio.ensure_future(
                asyncio.to_thread(cli_json, fleet, "account", "disable", fleet.tenant.account_id)
            )
            await refused_from_return(probes, asyncio.ensure_future(timed(call)), {403, 422})
            statuses = {probe.path: (await probe.client.get(probe.path)) for probe in probes}
            assert statuses[F_PROBE].json()["code"] == "account_disabled"
            assert statuses[D_PROBE].status_code == 403
            await asyncio.to_thread(cli_json, fleet, "account", "enable", fleet.tenant.account_id)
            # enable returned: every process accepts the same connections' credentials again
            assert {await probe.once() for probe in probes} == {200}
        finally:
            await asyncio.gather(*(probe.client.aclose() for probe in probes))


def test_the_state_is_in_the_shared_store(fleet: Fleet, tmp_path: Path) -> None:
    """`key list` from any host shows what the rounds did: each leaky key revoked."""
    listed = cli_json(fleet, "key", "list", "--account", fleet.tenant.account_id)
    keys = listed["keys"]
    assert isinstance(keys, list)
    leaky = [key for key in keys if key["name"] == "leaky"]
    assert len(leaky) >= ROUNDS
    assert sum(1 for key in leaky if key["status"] == "REVOKED") == ROUNDS
