"""The raw baseline: an ASGI app with no framework and no devreg code, doing the SQL of
dialect F's `PATCH /devices/{id}` and `GET /devices/{id}` on its own SQLite file (WAL,
`synchronous=NORMAL`, which does not fsync a commit).

    BASELINE_DB=/tmp/x.sqlite3 python -m benchmarks.baseline_sqlite seed 10000
    BASELINE_DB=/tmp/x.sqlite3 uvicorn benchmarks.baseline_sqlite:app \
        --loop uvloop --http httptools --no-access-log

`seed` prints the device ids (`dev_<hex>`), one a line. The app serves the one account
in the file, live mode; it checks no credentials.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

# The devices table exactly as src/devreg/storage/migrations/0001_initial.sqlite.sql makes
# it (with its indexes); the tables it references are cut to what the rows need.
SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS divisions (
    id          BLOB PRIMARY KEY,
    account_id  BLOB NOT NULL REFERENCES accounts (id)
);
CREATE TABLE IF NOT EXISTS device_profiles (
    id           BLOB PRIMARY KEY,
    account_id   BLOB NOT NULL REFERENCES accounts (id),
    division_id  BLOB NOT NULL REFERENCES divisions (id)
);
CREATE TABLE IF NOT EXISTS devices (
    id                 BLOB PRIMARY KEY,
    account_id         BLOB NOT NULL REFERENCES accounts (id),
    live_mode          INTEGER NOT NULL,
    reference_id       TEXT,
    device_identifier  TEXT,
    division_id        BLOB NOT NULL REFERENCES divisions (id),
    profile_id         BLOB NOT NULL REFERENCES device_profiles (id),
    status             TEXT NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED', 'DELETED')),
    allow_read         INTEGER NOT NULL,
    allow_write        INTEGER NOT NULL,
    allow_renew        INTEGER NOT NULL,
    last_seen          INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    version            INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS devices_reference
    ON devices (account_id, live_mode, reference_id)
    WHERE reference_id IS NOT NULL AND status <> 'DELETED';
CREATE UNIQUE INDEX IF NOT EXISTS devices_identifier
    ON devices (division_id, live_mode, device_identifier)
    WHERE device_identifier IS NOT NULL AND status <> 'DELETED';
CREATE INDEX IF NOT EXISTS devices_listing
    ON devices (account_id, live_mode, created_at DESC, id DESC)
    WHERE status <> 'DELETED';
"""

COLUMNS = (
    "id, account_id, live_mode, reference_id, device_identifier, division_id, profile_id,"
    " status, allow_read, allow_write, allow_renew, last_seen, created_at, updated_at, version"
)
SELECT = (
    f"SELECT {COLUMNS} FROM devices"
    " WHERE id = ? AND account_id = ? AND live_mode = ? AND status <> 'DELETED'"
)
UPDATE = (
    "UPDATE devices SET reference_id = ?, version = version + 1, updated_at = ?"
    " WHERE id = ? AND account_id = ? AND live_mode = ? AND status <> 'DELETED'"
    f" RETURNING {COLUMNS}"
)


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def seed(path: str, count: int) -> list[str]:
    """A fresh account with `count` live devices; returns their ids as `dev_<hex>`."""
    conn = connect(path)
    conn.executescript(SCHEMA)
    now = time.time_ns() // 1000
    account, division, profile = (uuid.uuid4().bytes for _ in range(3))
    conn.execute("BEGIN")
    conn.execute("INSERT INTO accounts VALUES (?, ?, ?)", (account, "bench", now))
    conn.execute("INSERT INTO divisions VALUES (?, ?)", (division, account))
    conn.execute("INSERT INTO device_profiles VALUES (?, ?, ?)", (profile, account, division))
    ids = [uuid.uuid4().bytes for _ in range(count)]
    conn.executemany(
        f"INSERT INTO devices ({COLUMNS})"
        " VALUES (?, ?, 1, NULL, NULL, ?, ?, 'ACTIVE', 1, 1, 1, NULL, ?, ?, 0)",
        [(i, account, division, profile, now + n, now + n) for n, i in enumerate(ids)],
    )
    conn.execute("COMMIT")
    conn.close()
    return ["dev_" + i.hex() for i in ids]


class DeviceUpdate(msgspec.Struct, forbid_unknown_fields=True):
    reference_id: str | None = None


class DeviceOut(msgspec.Struct, omit_defaults=True):
    id: str
    object: str
    live_mode: bool
    reference_id: str
    time_created: str
    account_id: str
    last_seen: str | None = None


def rfc3339(us: int) -> str:
    return datetime.fromtimestamp(us // 1_000_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render(row: Any) -> bytes:
    return encode(
        DeviceOut(
            id="dev_" + row[0].hex(),
            object="device",
            live_mode=bool(row[2]),
            reference_id=row[3] or "",
            time_created=rfc3339(row[12]),
            account_id="acc_" + row[1].hex(),
            last_seen=None if row[11] is None else rfc3339(row[11]),
        )
    )


encode = msgspec.json.encode
decode_update = msgspec.json.Decoder(DeviceUpdate).decode
JSON_HEADERS = [(b"content-type", b"application/json")]
_state: dict[str, Any] = {}


async def respond(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                conn = connect(os.environ["BASELINE_DB"])
                _state["conn"] = conn
                _state["account"] = conn.execute("SELECT id FROM accounts").fetchone()[0]
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                _state["conn"].close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    path: str = scope["path"]
    method: str = scope["method"]
    if not path.startswith("/devices/dev_"):
        await respond(send, 404, b'{"error":"not_found"}')
        return
    try:
        device_id = bytes.fromhex(path[13:])
    except ValueError:
        device_id = b""
    if len(device_id) != 16:
        await respond(send, 404, b'{"error":"not_found"}')
        return
    conn: sqlite3.Connection = _state["conn"]
    account: bytes = _state["account"]
    if method == "GET":
        rows = conn.execute(SELECT, (device_id, account, 1)).fetchall()
    elif method == "PATCH":
        try:
            body = decode_update(await read_body(receive))
        except (msgspec.DecodeError, msgspec.ValidationError):
            await respond(send, 400, b'{"error":"invalid_input"}')
            return
        now = time.time_ns() // 1000
        try:
            rows = conn.execute(
                UPDATE, (body.reference_id or None, now, device_id, account, 1)
            ).fetchall()
        except sqlite3.IntegrityError:
            await respond(send, 409, b'{"error":"duplicate_reference"}')
            return
    else:
        await respond(send, 405, b'{"error":"method_not_allowed"}')
        return
    if not rows:
        await respond(send, 404, b'{"error":"not_found"}')
        return
    await respond(send, 200, render(rows[0]))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "seed":
        sys.exit("usage: BASELINE_DB=PATH python -m benchmarks.baseline_sqlite seed COUNT")
    print("\n".join(seed(os.environ["BASELINE_DB"], int(sys.argv[2]))))
