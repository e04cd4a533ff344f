"""What migration 0003 (the revocation mark's triggers and the CRL's partial index) costs one
revocation: devreg's REVOKE_CERTIFICATE statement, timed with them and then, on the same
scratch database, without them (dropped). Commits are not flushed to disk (SQLite
`synchronous=OFF`, PostgreSQL `synchronous_commit=off`), so the figure is the statement's.

    .venv/bin/python -m benchmarks.crl_revoke_cost [--postgres ADMIN_URL]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.certificates_seed import (
    certificate_rows,
    copy_postgres,
    insert_sqlite,
    seed_device,
)
from devreg.core.clock import now_us
from devreg.storage import migrate_store, open_store, sql, sqlite_path

REVOCATIONS = 2_000
OTHERS = 50_000  # unrevoked certificates beside them
WARM_UP = 1_000
TRIGGERS = [
    "certificates_revocation_updated",
    "certificates_revocation_inserted",
    "certificates_revocation_deleted",
]


async def certificates(url: str | None, data: Path) -> tuple[bytes, list[tuple[Any, ...]]]:
    await migrate_store(url, data)
    store = await open_store(url, data, durable=False)
    try:
        caller, device = await seed_device(store, "cost")
    finally:
        await store.close()
    total = 2 * REVOCATIONS + OTHERS
    rows, _ = certificate_rows(
        caller.account_id, device.id, revoked=0, unrevoked=total, now=now_us()
    )
    return caller.account_id, rows


async def median_us(
    run: Callable[[tuple[Any, ...]], Awaitable[None]], rows: list[tuple[Any, ...]]
) -> float:
    times = []
    for row in rows:
        started = time.perf_counter()
        await run(row)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


async def measure(url: str | None) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        account, rows = await certificates(url, data)
        # A warm-up first (not counted), so the first timed run is not the colder one.
        warm = rows[2 * REVOCATIONS : 2 * REVOCATIONS + WARM_UP]
        first, second = rows[:REVOCATIONS], rows[REVOCATIONS : 2 * REVOCATIONS]

        def params(row: tuple[Any, ...]) -> tuple[Any, ...]:
            return (now_us(), "superseded", account, row[0], account, True)

        if url is None:
            insert_sqlite(sqlite_path(None, data), rows)
            conn = sqlite3.connect(sqlite_path(None, data), isolation_level=None)
            conn.execute("PRAGMA synchronous = OFF")

            async def revoke_sqlite(row: tuple[Any, ...]) -> None:
                conn.execute(sql.REVOKE_CERTIFICATE, params(row)).fetchall()

            try:
                await median_us(revoke_sqlite, warm)
                with_them = await median_us(revoke_sqlite, first)
                for trigger in TRIGGERS:
                    conn.execute(f"DROP TRIGGER {trigger}")
                conn.execute("DROP INDEX certificates_revoked")
                without = await median_us(revoke_sqlite, second)
            finally:
                conn.close()
            return without, with_them
        import asyncpg

        from devreg.storage.postgres import numbered

        await copy_postgres(url, rows)
        pg = await asyncpg.connect(url)
        statement = numbered(sql.REVOKE_CERTIFICATE)

        async def revoke_postgres(row: tuple[Any, ...]) -> None:
            await pg.fetch(statement, *params(row))

        try:
            await pg.execute("SET synchronous_commit = off")
            await median_us(revoke_postgres, warm)
            with_them = await median_us(revoke_postgres, first)
            for trigger in TRIGGERS:
                await pg.execute(f"DROP TRIGGER {trigger} ON certificates")
            await pg.execute("DROP INDEX certificates_revoked")
            without = await median_us(revoke_postgres, second)
        finally:
            await pg.close()
        return without, with_them


async def admin(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", default=None, help="an admin URL: a scratch database")
    args = parser.parse_args()
    if args.postgres is None:
        without, with_them = asyncio.run(measure(None))
    else:
        name = "devreg_revoke_cost_" + secrets.token_hex(4)
        asyncio.run(admin(args.postgres, f'CREATE DATABASE "{name}"'))
        try:
            url = args.postgres.rpartition("/")[0] + "/" + name
            without, with_them = asyncio.run(measure(url))
        finally:
            asyncio.run(admin(args.postgres, f'DROP DATABASE "{name}" WITH (FORCE)'))
    print(
        f"{'sqlite' if args.postgres is None else 'postgres'}: one revocation's statement,"
        f" median {without:.1f} us without migration 0003's triggers and index,"
        f" {with_them:.1f} us with them (+{with_them - without:.1f} us)"
    )


if __name__ == "__main__":
    main()
