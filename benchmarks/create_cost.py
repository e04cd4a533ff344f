"""What a create and a delete cost at the store, one after another and 200 at a time (the
group commit's case), on SQLite (synchronous=FULL) and PostgreSQL: issue 12 item 8's
device counter is written in the same transaction as each.

    .venv/bin/python -m benchmarks.create_cost [--count 2000] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from tests.core.conftest import make_tenant

from devreg.core.devices import DeviceService
from devreg.core.store import DeviceStore
from devreg.storage import migrate_store, open_store

CONCURRENT = 200


async def measure(store: DeviceStore, count: int) -> dict[str, float]:
    tenant = await make_tenant(store, "bench-" + secrets.token_hex(4))
    service = DeviceService(store)
    figures: dict[str, float] = {}
    times = []
    made = []
    for n in range(count):
        started = time.perf_counter()
        made.append(await service.create(tenant.live, f"seq-{n}"))
        times.append(time.perf_counter() - started)
    figures["create, one at a time: median ms"] = statistics.median(times) * 1000
    times = []
    for device in made:
        started = time.perf_counter()
        await service.delete(tenant.live, device.id)
        times.append(time.perf_counter() - started)
    figures["delete, one at a time: median ms"] = statistics.median(times) * 1000
    started, cpu = time.perf_counter(), time.process_time()
    for offset in range(0, count, CONCURRENT):
        await asyncio.gather(
            *(service.create(tenant.live, f"par-{n}") for n in range(offset, offset + CONCURRENT))
        )
    figures[f"create, {CONCURRENT} at a time: per second"] = count / (time.perf_counter() - started)
    # CPU time is less disturbed by other processes on the machine than the wall clock.
    figures[f"create, {CONCURRENT} at a time: CPU us each"] = (
        (time.process_time() - cpu) / count * 1e6
    )
    return figures


async def fresh_database(admin_url: str) -> str:
    import asyncpg

    name = "devreg_bench_" + secrets.token_hex(4)
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_url.rpartition("/")[0] + "/" + name


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--postgres-url", help="an admin URL: a fresh database is made on it")
    args = parser.parse_args()
    urls: list[str | None] = [None]
    if args.postgres_url:
        urls.append(await fresh_database(args.postgres_url))
    with tempfile.TemporaryDirectory() as tmp:
        for url in urls:
            await migrate_store(url, Path(tmp))
            store = await open_store(url, Path(tmp))
            try:
                for name, value in (await measure(store, args.count)).items():
                    print(f"{'postgres' if url else 'sqlite'}: {name} {value:.2f}")
            finally:
                await store.close()


if __name__ == "__main__":
    asyncio.run(main())
