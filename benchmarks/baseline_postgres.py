"""The raw PostgreSQL baseline for dialect F's `PATCH /devices/{id}`: an ASGI app with no
framework and no devreg code, running devreg's `UPDATE ... RETURNING` on an asyncpg pool
of the size devreg's PostgreSQL store uses (1 to 10 connections per process).

    BASELINE_PG_URL=postgresql://postgres@127.0.0.1:5432/bench_x \
        uvicorn benchmarks.baseline_postgres:app --workers 2 --loop uvloop --http httptools

`seed` makes the tables (devreg's, copied in baseline_sql.py) and the devices; it serves
the one account in the database, live mode; it checks no credentials.

`BASELINE_CHANGE_LOG=1`: as baseline_sqlite.py, the PATCH also writes devreg's change log
entry in the UPDATE's transaction (the device and its values, the UPDATE, the head's row
locked by `UPDATE change_head ... RETURNING`, the entry, the head moved).
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import asyncpg
import msgspec

from benchmarks.baseline_sql import (
    INSERT_CHANGE,
    MOVE_CHANGE_HEAD,
    POSTGRES_SCHEMA,
    SELECT_ANY_DEVICE_BY_ID,
    SELECT_VALUES_OF_ONE,
    TAKE_CHANGE_SEQ,
    UPDATE_REFERENCE,
    numbered,
)
from benchmarks.baseline_sqlite import (
    ACTOR,
    LOGGED,
    DeviceUpdate,
    Receive,
    Scope,
    Send,
    device_id_of,
    device_out,
    device_record_json,
    entry_hash,
    read_body,
    respond,
)

UPDATE = numbered(UPDATE_REFERENCE)
SELECT_OLD, SELECT_VALUES = numbered(SELECT_ANY_DEVICE_BY_ID), numbered(SELECT_VALUES_OF_ONE)
TAKE, INSERT, MOVE = numbered(TAKE_CHANGE_SEQ), numbered(INSERT_CHANGE), numbered(MOVE_CHANGE_HEAD)
POOL_MIN, POOL_MAX = 0, 10  # devreg's PostgresDeviceStore.open defaults (connect on demand)
DEVICE_FIELDS = (
    "id", "account_id", "live_mode", "division_id", "profile_id", "status", "allow_read",
    "allow_write", "allow_renew", "created_at", "updated_at", "version",
)  # fmt: skip
encode = msgspec.json.encode
decode_update = msgspec.json.Decoder(DeviceUpdate).decode
_state: dict[str, Any] = {}


async def seed(url: str, count: int) -> list[bytes]:
    """The tables, one account with its default division and profile, `count` live
    devices (COPY); returns their ids, oldest first."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(POSTGRES_SCHEMA)
        now = time.time_ns() // 1000
        account, division, profile = (uuid.uuid4().bytes for _ in range(3))
        await conn.execute("INSERT INTO accounts VALUES ($1, 'bench', $2)", account, now)
        await conn.execute(
            "INSERT INTO divisions VALUES ($1, $2, 'Default', true, $3, $3)",
            division, account, now,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO device_profiles VALUES ($1, $2, $3, 'Default', true, true, true, true,"
            " $4, $4)",
            profile, account, division, now,
        )  # fmt: skip
        ids = [uuid.uuid4().bytes for _ in range(count)]
        records = [
            (i, account, True, division, profile, "ACTIVE", True, True, True, now + n, now + n, 1)
            for n, i in enumerate(ids)
        ]
        await conn.copy_records_to_table("devices", records=records, columns=DEVICE_FIELDS)
        await conn.execute("ANALYZE devices")
        return ids
    finally:
        await conn.close()


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            pool = await asyncpg.create_pool(
                os.environ["BASELINE_PG_URL"], min_size=POOL_MIN, max_size=POOL_MAX
            )
            _state["pool"] = pool
            _state["account"] = await pool.fetchval("SELECT id FROM accounts")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await _state["pool"].close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    path: str = scope["path"]
    device_id = device_id_of(path[9:]) if path.startswith("/devices/") else None
    if device_id is None or scope["method"] != "PATCH":
        await respond(send, 404, b'{"error":"not_found"}')
        return
    try:
        body = decode_update(await read_body(receive))
    except (msgspec.DecodeError, msgspec.ValidationError):
        await respond(send, 400, b'{"error":"invalid_input"}')
        return
    params = (body.reference_id or None, time.time_ns() // 1000, device_id, _state["account"], True)
    try:
        if LOGGED:
            rows = await patch_logged(_state["pool"], params)
        else:
            rows = await _state["pool"].fetch(UPDATE, *params)
    except asyncpg.UniqueViolationError:
        await respond(send, 409, b'{"error":"duplicate_reference"}')
        return
    if not rows:
        await respond(send, 404, b'{"error":"not_found"}')
        return
    await respond(send, 200, encode(device_out(rows[0])))


async def patch_logged(pool: asyncpg.Pool, params: tuple[Any, ...]) -> list[Any]:
    """devreg's PATCH with its change log entry, in one transaction, in devreg's order."""
    device_id, now = params[2], params[1]
    async with pool.acquire() as conn, conn.transaction():
        olds = await conn.fetch(SELECT_OLD, device_id)
        values = await conn.fetch(SELECT_VALUES, device_id)
        rows = await conn.fetch(UPDATE, *params)
        if not rows or not olds:
            return list(rows)
        new = tuple(rows[0])
        last, head_time, prev = await conn.fetchrow(TAKE, 1)
        at = max(time.time_ns() // 1000, now, head_time)
        entry = (
            last, at, new[1], new[2], *ACTOR, "req_" + os.urandom(16).hex(),
            "device.update", "device", new[0], new[14],
            device_record_json(tuple(olds[0]), [tuple(v) for v in values]),
            device_record_json(new, [tuple(v) for v in values]),
        )  # fmt: skip
        digest = entry_hash(prev, entry)
        await conn.execute(INSERT, *entry, prev, digest)
        await conn.execute(MOVE, at, digest)
        return list(rows)
