"""Many certificate records straight into the database, for tests and measurements that need
tens of thousands of them: one multi-row transaction on SQLite, COPY on PostgreSQL, instead
of one API call (and one signature) each. The rows are records only (their PEM is a
placeholder), owned by an existing account's device, issued by devreg unless `issuer` says
otherwise, unexpired."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.origins import TEST_ORIGIN, api_caller

from devreg.auth.api_keys import new_api_key
from devreg.core.accounts import build_account
from devreg.core.clock import now_us
from devreg.core.devices import DeviceService
from devreg.core.ids import new_id
from devreg.core.records import Caller, Device
from devreg.core.store import DeviceStore
from devreg.storage import is_postgres_url, sqlite_path

COLUMNS = [
    "id", "account_id", "device_id", "serial", "fingerprint", "public_key_hash", "pem",
    "issuer", "not_before", "not_after", "created_at", "revoked_at", "revocation_reason",
]  # fmt: skip
DAY_US = 86_400 * 1_000_000
REASONS = ("keyCompromise", "superseded", "unspecified", "cessationOfOperation")


@dataclass(frozen=True)
class Seeded:
    revoked: dict[int, tuple[int, str]]  # serial -> (revoked_at, reason)
    unrevoked: int


def certificate_rows(
    account_id: bytes, device_id: bytes, *, revoked: int, unrevoked: int, now: int
) -> tuple[list[tuple[Any, ...]], Seeded]:
    rows: list[tuple[Any, ...]] = []
    listed: dict[int, tuple[int, str]] = {}
    for index in range(revoked + unrevoked):
        serial = secrets.randbits(120) | 1 << 120  # positive, 16 octets, unique in practice
        revoked_at: int | None = None
        reason: str | None = None
        if index < revoked:
            revoked_at, reason = now - DAY_US + index, REASONS[index % len(REASONS)]
            listed[serial] = (revoked_at, reason)
        rows.append(
            (
                new_id(), account_id, device_id, format(serial, "X"), secrets.token_bytes(32),
                secrets.token_bytes(32), "seeded", "devreg", now - DAY_US, now + 30 * DAY_US,
                now - DAY_US, revoked_at, reason,
            )
        )  # fmt: skip
    return rows, Seeded(listed, unrevoked)


async def seed_certificates(
    database_url: str | None,
    data_dir: Path,
    account_id: bytes,
    device_id: bytes,
    *,
    revoked: int,
    unrevoked: int = 0,
    now: int,
) -> Seeded:
    """Insert `revoked` revoked and `unrevoked` valid certificate records of the device, in
    one transaction, while a server may be running on the same database."""
    rows, seeded = certificate_rows(
        account_id, device_id, revoked=revoked, unrevoked=unrevoked, now=now
    )
    if is_postgres_url(database_url):
        assert database_url is not None
        await copy_postgres(database_url, rows)
    else:
        insert_sqlite(sqlite_path(database_url, data_dir), rows)
    return seeded


def insert_sqlite(path: Path, rows: Sequence[tuple[Any, ...]]) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN IMMEDIATE")
        placeholders = ", ".join("?" for _ in COLUMNS)
        conn.executemany(
            f"INSERT INTO certificates ({', '.join(COLUMNS)}) VALUES ({placeholders})", rows
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


async def copy_postgres(url: str, rows: Sequence[tuple[Any, ...]]) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table("certificates", records=rows, columns=COLUMNS)
    finally:
        await conn.close()


async def seed_device(store: DeviceStore, name: str) -> tuple[Caller, Device]:
    """A new account (with a key) holding one device: the certificates' owner."""
    new = build_account(name, now_us())
    _, key = new_api_key(new.account.id, True, now_us())
    await store.create_account(new.account, [key], new.division, new.profile, TEST_ORIGIN)
    caller = api_caller(new.account.id, True, key.id)
    device = await DeviceService(store).create_in_profile(caller, "gw", None, None, [])
    return caller, device
