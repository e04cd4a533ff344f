"""The CRL's costs on a real store: the "is the CRL stale" mark (asked by every CRL fetch),
a CRL rebuild, and how long the event loop is held meanwhile.

    .venv/bin/python -m benchmarks.crl [--postgres URL] [--certificates N] [--revoked N,...]

Prints, per size: the mark's median time per call, one revocation's median time, a
rebuild's wall time, and the median and longest stall of a 1 ms ticker running on the same
event loop during the rebuild (how long another request of the process waits, beyond 1 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from tests.support.origins import TEST_ORIGIN

from benchmarks.certificates_seed import (
    certificate_rows,
    copy_postgres,
    insert_sqlite,
    seed_certificates,
    seed_device,
)
from devreg.core.clock import now_us
from devreg.core.records import Caller
from devreg.core.store import DeviceStore
from devreg.pki.ca import load_or_create_ca
from devreg.pki.revocation import CrlPublisher
from devreg.storage import migrate_store, open_store, sqlite_path

REVOCATIONS = 300


async def ticker(stalls: list[float], stop: asyncio.Event) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        stalls.append(now - last)
        last = now


async def measure(database_url: str | None, certificates: int, revoked: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        await migrate_store(database_url, data)
        # Not durable: the fsync would hide the statements' own cost in the revocation figure.
        store = await open_store(database_url, data, durable=False)
        try:
            caller, device = await seed_device(store, "crl")
            await seed_certificates(
                database_url, data, caller.account_id, device.id,
                revoked=revoked, unrevoked=certificates - revoked, now=now_us(),
            )  # fmt: skip
            times = []
            for _ in range(20):
                started = time.perf_counter()
                await store.revocation_mark()
                times.append(time.perf_counter() - started)
            revoke_us = await revocation_cost(store, database_url, data, caller, device.id)
            publisher = CrlPublisher(store, load_or_create_ca(data / "ca"))
            stalls: list[float] = []
            stop = asyncio.Event()
            ticking = asyncio.create_task(ticker(stalls, stop))
            await asyncio.sleep(0.05)
            stalls.clear()
            started = time.perf_counter()
            crl = await publisher.current()
            built = time.perf_counter() - started
            stop.set()
            await ticking
            print(
                f"{certificates:>8} certificates {revoked:>7} revoked:"
                f" mark {statistics.median(times) * 1000:8.3f} ms,"
                f" revoke {revoke_us:6.0f} us,"
                f" rebuild {built * 1000:8.1f} ms ({len(crl.der) / 1e6:.1f} MB),"
                f" event-loop stalls: median {statistics.median(stalls or [0]) * 1000:5.1f} ms,"
                f" longest {max(stalls, default=0) * 1000:8.1f} ms"
            )
        finally:
            await store.close()


async def revocation_cost(
    store: DeviceStore, database_url: str | None, data: Path, caller: Caller, device_id: bytes
) -> float:
    """Median microseconds of one revocation (`PUT /certificate/{id}/revoke`'s write)."""
    rows, _ = certificate_rows(
        caller.account_id, device_id, revoked=0, unrevoked=REVOCATIONS, now=now_us()
    )
    if database_url is None:
        insert_sqlite(sqlite_path(None, data), rows)
    else:
        await copy_postgres(database_url, rows)
    times = []
    for row in rows:
        started = time.perf_counter()
        revoked = await store.revoke_certificate(
            caller.account_id, True, row[0], "superseded", now_us(), TEST_ORIGIN
        )
        times.append(time.perf_counter() - started)
        assert revoked is not None
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--postgres", default=None, help="an admin URL: a scratch database is made there"
    )
    parser.add_argument("--certificates", type=int, default=0, help="total (default: revoked)")
    parser.add_argument("--revoked", default="5000,50000")
    args = parser.parse_args()
    for revoked in [int(n) for n in args.revoked.split(",")]:
        total = max(args.certificates, revoked)
        if args.postgres is None:
            asyncio.run(measure(None, total, revoked))
            continue
        name = "devreg_crl_bench_" + secrets.token_hex(4)
        asyncio.run(admin(args.postgres, f'CREATE DATABASE "{name}"'))
        try:
            asyncio.run(measure(args.postgres.rpartition("/")[0] + "/" + name, total, revoked))
        finally:
            asyncio.run(admin(args.postgres, f'DROP DATABASE "{name}" WITH (FORCE)'))


async def admin(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
