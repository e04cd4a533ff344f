"""Issue 6 item 4, crashes: under write load from both dialects (a bearer token, an API key,
devices over mutual TLS), SIGKILL `devreg serve` and every process under it at a random
moment, then start it again on the same data. Every write answered 2xx is there (or a
later write of the same record), each record's version counts every acknowledged write,
and on SQLite `PRAGMA integrity_check` says ok. Several rounds, each at its own moment,
from a seed that is printed (DEVREG_CRASH_SEED repeats a run)."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import sqlite3
from pathlib import Path

import pytest

from devreg.storage import SQLITE_FILE, open_store
from tests.reliability.support import (
    D_BASE,
    FIGURES,
    Journal,
    Records,
    Tenant,
    Written,
    api_client,
    check_records,
    d_writer,
    f_writer,
    issue_certificate,
    kill_everything,
    make_d_device,
    mtls_client,
    new_tenant,
    wait_for_workers,
)
from tests.support.server import RunningServer, start_server

SEED = int(os.environ.get("DEVREG_CRASH_SEED") or secrets.randbelow(2**31))
ROUNDS = 3
F_WRITERS = 4
KEY_DEVICES = 3  # written with the API key
OWN_DEVICES = 2  # writing themselves, over mutual TLS


def integrity(data_dir: Path) -> tuple[list[str], int]:
    """What an operator checks after a crash: SQLite's own verdict, and dangling references."""
    conn = sqlite3.connect(data_dir / SQLITE_FILE)
    try:
        verdict = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        dangling = len(conn.execute("PRAGMA foreign_key_check").fetchall())
    finally:
        conn.close()
    return verdict, dangling


def serve(data_dir: Path, database_url: str | None) -> RunningServer:
    server = start_server(data_dir, database_url=database_url, workers=2, mtls=True, rate_limit=0)
    wait_for_workers(server, 2)
    return server


async def write_until_killed(
    server: RunningServer,
    tenant: Tenant,
    records: Records,
    own: list[tuple[Written, Path, Path]],
    prefix: str,
    moment: float,
) -> tuple[Journal, int]:
    """Writers on every path until `moment` seconds in, then kill -9 of every process."""
    assert server.mtls_port is not None
    journal, stop = Journal(), asyncio.Event()
    f_clients = [api_client(server.base_url, tenant.f_headers) for _ in range(F_WRITERS)]
    key_clients = [api_client(server.base_url, tenant.d_headers) for _ in range(KEY_DEVICES)]
    cert_clients = [
        mtls_client(server.mtls_port, server.data_dir / "ca.pem", cert, key) for _, cert, key in own
    ]
    writers = [
        f_writer(client, f"{prefix}f{n}", records, journal, stop)
        for n, client in enumerate(f_clients)
    ]
    for n, client in enumerate(key_clients + cert_clients):
        writers.append(d_writer(client, f"{prefix}d{n}", records.d[n], tenant, journal, stop))
    tasks = [asyncio.create_task(writer) for writer in writers]
    try:
        await asyncio.sleep(moment)
        killed = kill_everything(server)  # blocks the loop: no request starts meanwhile
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        await asyncio.gather(*(c.aclose() for c in f_clients + key_clients + cert_clients))
    return journal, killed


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite in the data directory, else the session's PostgreSQL database."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return None


async def test_kill_9_at_random_moments_loses_no_acknowledged_write(
    database_url: str | None, tmp_path: Path
) -> None:
    backend = "postgres" if database_url else "sqlite"
    rng = random.Random(f"{SEED}-{backend}")
    data_dir = tmp_path / "data"
    server = serve(data_dir, database_url)
    try:
        tenant = new_tenant(server)
        records = Records()
        for n in range(KEY_DEVICES + OWN_DEVICES):
            tag = f"d{n}-initial"
            records.d.append(Written(make_d_device(server, tenant, tag), tag))
        own = [
            (record, *issue_certificate(server, tenant, record.api_id, tmp_path / "certs"))
            for record in records.d[KEY_DEVICES:]
        ]
        moments = []
        for round_ in range(ROUNDS):
            moment = round(rng.uniform(0.3, 1.2), 3)
            moments.append(moment)
            journal, killed = await write_until_killed(
                server, tenant, records, own, f"r{round_}", moment
            )
            statuses = [answer.status for answer in journal.answers]
            # Until the kill every request was answered, and answered with success.
            assert {s for s in statuses if s} <= {200, 201}, sorted(set(statuses))
            acknowledged = sum(1 for s in statuses if s)
            assert acknowledged >= 10, statuses  # there was load to lose
            if backend == "sqlite":
                assert integrity(data_dir) == (["ok"], 0)
            server = serve(data_dir, database_url)
            store = await open_store(database_url, data_dir)
            try:
                checked = await check_records(server.base_url, tenant, records, store)
            finally:
                await store.close()
            print(
                f"round {round_}: kill -9 of {killed} processes at {moment} s,"
                f" {acknowledged} writes acknowledged in the round,"
                f" {statuses.count(0)} without an answer; {checked} acknowledged writes checked"
            )
        FIGURES.writes_checked += records.acknowledged()  # each after every later crash
        FIGURES.notes.append(f"kill -9 moments on {backend} (seed {SEED}): {moments} s")
        # And the restarted service goes on serving writes.
        async with api_client(server.base_url + D_BASE, tenant.d_headers) as d:
            again = await d.put(
                f"/device/{records.d[0].api_id}",
                json={
                    "device_identifier": "after",
                    "fields": [{"id": tenant.field_id, "value": "x"}],
                },
            )
        assert again.status_code == 201, again.text
    finally:
        server.stop()


def test_written_keeps_what_may_have_been_applied() -> None:
    """The bookkeeping the checks rely on: an unanswered write may or may not be there,
    a refused one is not, an acknowledged one is, and the version range follows."""
    record = Written("id", "v0")
    record.sending("v1")  # no answer (the server was killed)
    assert record.possible() == {"v0", "v1"} and record.versions() == range(1, 3)
    record.sending("v2")
    record.answered("v2", 201)
    assert record.possible() == {"v2"} and record.versions() == range(2, 4)
    record.sending("v3")
    record.answered("v3", 400)
    assert record.possible() == {"v2"} and record.versions() == range(2, 4)
    record.sending("v4")
    record.answered("v4", 503)
    assert record.possible() == {"v2", "v4"} and record.versions() == range(2, 5)
