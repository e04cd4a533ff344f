"""Issue 6 item 3: 64 concurrent clients across `devreg serve --workers 2`, on SQLite and
on PostgreSQL, racing for one reference_id (dialect F), one device_identifier (dialect D)
and writing one device from both dialects and over mutual TLS. Uniqueness holds, every
loser gets the dialect's refusal and changes nothing, the final state is that of a write
that may come last in real time, the version counts every acknowledged write, and no 5xx
(no "database is locked") ever reaches a client."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest

from devreg.storage import open_store
from tests.reliability.support import (
    D_BASE,
    Tenant,
    api_client,
    connections_by_process,
    d_body,
    d_error,
    f_error,
    issue_certificate,
    make_d_device,
    mtls_client,
    new_tenant,
    raw_id,
    spread_clients,
    together,
    wait_for_workers,
)
from tests.support.server import RunningServer, start_server

CLIENTS = 64
ROUNDS = 2  # races per kind of write
WRITES_EACH = 4  # sequential writes per client on the shared device


@dataclass
class Cluster:
    server: RunningServer
    tenant: Tenant
    directory: Path
    workers: list[int]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    base = tmp_path_factory.mktemp(f"race-{request.param}")
    server = start_server(
        base / "data", database_url=database_url, workers=2, mtls=True, rate_limit=0
    )
    try:
        yield Cluster(server, new_tenant(server), base, wait_for_workers(server, 2))
        assert_log_clean(server)
    finally:
        server.stop()


def assert_log_clean(server: RunningServer) -> None:
    """Nothing failed on the server's side: no locked database, no unhandled error."""
    log = server.log()
    for sign in ("database is locked", "unhandled error", "Traceback", "service unavailable"):
        assert sign not in log, log[-3000:]


async def spread(
    cluster: Cluster, make: Callable[[], httpx.AsyncClient], count: int, *, mtls: bool = False
) -> list[httpx.AsyncClient]:
    """`count` connected clients, both workers holding some of their connections."""
    server = cluster.server
    if mtls:
        assert server.mtls_port is not None
        warm, port = f"{D_BASE}/device/{secrets.token_hex(2)}", server.mtls_port
    else:
        warm, port = server.base_url + "/healthz", _port(server)
    clients = await spread_clients(make, count, warm, cluster.workers, port)
    print(f"connections to port {port} per worker: {connections_by_process(cluster.workers, port)}")
    return clients


@pytest.fixture
async def f_clients(cluster: Cluster) -> AsyncIterator[list[httpx.AsyncClient]]:
    make = partial(api_client, cluster.server.base_url, cluster.tenant.f_headers)
    clients = await spread(cluster, make, CLIENTS)
    try:
        yield clients
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))


@pytest.fixture
async def d_clients(cluster: Cluster) -> AsyncIterator[list[httpx.AsyncClient]]:
    make = partial(api_client, cluster.server.base_url + D_BASE, cluster.tenant.d_headers)
    clients = await spread(cluster, make, CLIENTS)
    try:
        yield clients
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))


def _port(server: RunningServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def the_winner(answers: list[httpx.Response], ok: int) -> httpx.Response:
    statuses = Counter(answer.status_code for answer in answers)
    winners = [answer for answer in answers if answer.status_code == ok]
    assert len(winners) == 1, statuses
    return winners[0]


def assert_f_losers(answers: list[httpx.Response], winner: httpx.Response) -> None:
    for answer in answers:
        if answer is not winner:
            assert f_error(answer) == (
                409, "conflict", "duplicate_reference", "Reference ID already exists",
            )  # fmt: skip


def assert_d_losers(answers: list[httpx.Response], winner: httpx.Response) -> None:
    for answer in answers:
        if answer is not winner:
            status, code, message = d_error(answer)
            # Seed 003 reports a taken identifier as invalid input.
            assert (status, code) == (400, "invalid_input"), answer.text
            assert "identifier" in message and "already exists" in message, message


async def test_f_creates_and_updates_racing_for_one_reference_id_leave_one_holder(
    f_clients: list[httpx.AsyncClient],
) -> None:
    anyone = f_clients[0]
    for race in range(ROUNDS):  # 64 POSTs with one reference_id
        ref = f"post-{race}-{secrets.token_hex(4)}"
        answers = await together(
            [partial(c.post, "/devices", json={"reference_id": ref}) for c in f_clients]
        )
        winner = the_winner(answers, 201)
        assert_f_losers(answers, winner)
        listed = await anyone.get("/devices", params={"reference_id": ref})
        assert [d["id"] for d in listed.json()["data"]] == [winner.json()["id"]]

    made = await asyncio.gather(*(c.post("/devices", json={}) for c in f_clients))
    holds = {answer.json()["id"]: answer.json()["reference_id"] for answer in made}
    ids = list(holds)
    for race in range(ROUNDS):  # 64 PATCHes of 64 devices to one reference_id
        ref = f"patch-{race}-{secrets.token_hex(4)}"
        answers = await together(
            [
                partial(c.patch, f"/devices/{device}", json={"reference_id": ref})
                for c, device in zip(f_clients, ids, strict=True)
            ]
        )
        winner = the_winner(answers, 200)
        assert_f_losers(answers, winner)
        holds[winner.json()["id"]] = ref

    for race in range(ROUNDS):  # half create, half update, one reference_id
        ref = f"mixed-{race}-{secrets.token_hex(4)}"
        calls: list[Callable[[], Awaitable[httpx.Response]]] = []
        for n, (client, device) in enumerate(zip(f_clients, ids, strict=True)):
            if n % 2:
                calls.append(partial(client.post, "/devices", json={"reference_id": ref}))
            else:
                calls.append(
                    partial(client.patch, f"/devices/{device}", json={"reference_id": ref})
                )
        answers = await together(calls)
        statuses = Counter(answer.status_code for answer in answers)
        assert statuses[200] + statuses[201] == 1, statuses
        (winner,) = [answer for answer in answers if answer.status_code in (200, 201)]
        assert_f_losers(answers, winner)
        listed = await anyone.get("/devices", params={"reference_id": ref})
        assert [d["id"] for d in listed.json()["data"]] == [winner.json()["id"]]
        if winner.status_code == 200:
            holds[winner.json()["id"]] = ref
    now = await asyncio.gather(*(anyone.get(f"/devices/{device}") for device in ids))
    assert {d.json()["id"]: d.json()["reference_id"] for d in now} == holds  # losers unchanged


async def test_d_creates_and_puts_racing_for_one_device_identifier_leave_one_holder(
    cluster: Cluster, d_clients: list[httpx.AsyncClient]
) -> None:
    tenant, anyone = cluster.tenant, d_clients[0]
    new_device = {"device_profile_id": tenant.profile_id}
    for race in range(ROUNDS):  # 64 POSTs with one device_identifier
        ident = f"post-{race}-{secrets.token_hex(4)}"
        answers = await together(
            [
                partial(c.post, "/device", json={**new_device, **d_body(tenant, ident)})
                for c in d_clients
            ]
        )
        winner = the_winner(answers, 201)
        assert_d_losers(answers, winner)
        listed = await anyone.get("/device", params={"device_identifier": ident})
        assert [d["id"] for d in listed.json()["records"]] == [winner.json()["id"]]

    own = [f"own-{n}-{secrets.token_hex(4)}" for n in range(CLIENTS)]
    made = await asyncio.gather(
        *(
            c.post("/device", json={**new_device, **d_body(tenant, tag)})
            for c, tag in zip(d_clients, own, strict=True)
        )
    )
    holds = {answer.json()["id"]: tag for answer, tag in zip(made, own, strict=True)}
    ids = list(holds)
    for race in range(ROUNDS):  # 64 PUTs of 64 devices to one device_identifier
        ident = f"put-{race}-{secrets.token_hex(4)}"
        answers = await together(
            [
                partial(c.put, f"/device/{device}", json=d_body(tenant, ident))
                for c, device in zip(d_clients, ids, strict=True)
            ]
        )
        winner = the_winner(answers, 201)
        assert_d_losers(answers, winner)
        holds[winner.json()["id"]] = ident
    now = [r.json() for r in await asyncio.gather(*(anyone.get(f"/device/{d}") for d in ids))]
    # A refused PUT changes nothing: neither the identifier nor the (destructive) values.
    assert {d["id"]: d["device_identifier"] for d in now} == holds
    assert {d["id"]: d["fields"][0]["value"] for d in now} == holds


@dataclass
class Write:
    column: str  # "identifier" (D, API key or the device itself) or "reference" (F)
    tag: str
    sent: float
    done: float
    status: int


async def test_writes_racing_on_one_device_end_as_one_of_them_and_each_counts(
    cluster: Cluster,
) -> None:
    server, tenant = cluster.server, cluster.tenant
    device = make_d_device(server, tenant, "shared-" + secrets.token_hex(4))
    cert, key = issue_certificate(server, tenant, device, cluster.directory / "certs")
    f_id = "dev_" + raw_id(device).hex()
    assert server.mtls_port is not None
    ca = server.data_dir / "ca.pem"
    by_key: list[httpx.AsyncClient] = []
    by_token: list[httpx.AsyncClient] = []
    by_cert: list[httpx.AsyncClient] = []
    writes: list[Write] = []

    async def writer(client: httpx.AsyncClient, name: str) -> None:
        for n in range(WRITES_EACH):
            tag = f"{name}-{n}"
            sent = time.monotonic()
            if name.startswith("f"):
                answer = await client.patch(f"/devices/{f_id}", json={"reference_id": tag})
                column = "reference"
            else:
                answer = await client.put(f"{D_BASE}/device/{device}", json=d_body(tenant, tag))
                column = "identifier"
                if answer.status_code == 201:  # the answer is the record as this write left it
                    assert answer.json()["device_identifier"] == tag, answer.text
                    assert answer.json()["fields"][0]["value"] == tag, answer.text
            writes.append(Write(column, tag, sent, time.monotonic(), answer.status_code))

    try:
        by_key += await spread(cluster, partial(api_client, server.base_url, tenant.d_headers), 24)
        by_token += await spread(
            cluster, partial(api_client, server.base_url, tenant.f_headers), 16
        )
        by_cert += await spread(
            cluster, partial(mtls_client, server.mtls_port, ca, cert, key), 24, mtls=True
        )
        await together(
            [partial(writer, c, f"key{n}") for n, c in enumerate(by_key)]
            + [partial(writer, c, f"cert{n}") for n, c in enumerate(by_cert)]
            + [partial(writer, c, f"f{n}") for n, c in enumerate(by_token)]
        )
        assert Counter(w.status for w in writes) == {
            201: 48 * WRITES_EACH,
            200: 16 * WRITES_EACH,
        }, Counter(w.status for w in writes)
        d_now = (await by_key[0].get(f"{D_BASE}/device/{device}")).json()
        f_now = (await by_token[0].get(f"/devices/{f_id}")).json()
    finally:
        await asyncio.gather(*(c.aclose() for c in by_key + by_cert + by_token))

    # The record is what one write left, whole, and that write may be the last in real time:
    # none was sent after it had been answered.
    for column, held in (
        ("identifier", d_now["device_identifier"]),
        ("reference", f_now["reference_id"]),
    ):
        (last,) = [w for w in writes if w.column == column and w.tag == held]
        assert not [w for w in writes if w.column == column and w.sent > last.done], held
    assert d_now["fields"][0]["value"] == d_now["device_identifier"]
    assert d_now["last_seen"] is not None  # the device's own writes touched it
    store = await open_store(server.database_url, server.data_dir)
    try:
        stored = await store.get_device_by_id(raw_id(device))
    finally:
        await store.close()
    assert stored is not None and stored.version == 1 + len(writes)  # created + every write
