"""The raw baseline for dialect F: an ASGI app with no framework and no devreg code, doing
the SQL devreg runs for `PATCH /devices/{id}`, `GET /devices/{id}` and the keyset page
`GET /devices?limit=N&starting_after=ID`, on its own SQLite file (WAL,
`synchronous=NORMAL`: a commit is not fsync'd).

    BASELINE_DB=/tmp/x.sqlite3 uvicorn benchmarks.baseline_sqlite:app \
        --loop uvloop --http httptools --no-access-log

The file is made by `baseline_store.seed`. It serves the one account in the file, live
mode; it checks no credentials.

`BASELINE_CHANGE_LOG=1`: the PATCH also writes the change log as devreg does (storage/
base.py `update_device` and `_logged`, storage/change_log.py `append`), in one
transaction: the device (any status) and its values (the entry's `before`), the same
`UPDATE ... RETURNING`, the head's next seq, the entry's SHA-256 (over the previous hash
and the entry's canonical JSON, changelog/chain.py), the INSERT into change_log and the
head moved to it. Without it (the default) the PATCH is the one `UPDATE ... RETURNING`.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from benchmarks.baseline_sql import (
    INSERT_CHANGE,
    LIST_OLDER,
    MOVE_CHANGE_HEAD,
    SELECT_ANY_DEVICE_BY_ID,
    SELECT_DEVICE,
    SELECT_DEVICE_ANY_STATUS,
    SELECT_VALUES_OF_ONE,
    TAKE_CHANGE_SEQ,
)
from benchmarks.baseline_sql import UPDATE_REFERENCE as UPDATE
from benchmarks.baseline_store import connect

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Row = Sequence[Any]


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


class DeviceList(msgspec.Struct):
    object: str
    url: str
    has_more: bool
    data: list[DeviceOut]


def rfc3339(us: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(us // 1_000_000))


def device_out(row: Row) -> DeviceOut:
    return DeviceOut(
        id="dev_" + row[0].hex(),
        object="device",
        live_mode=bool(row[2]),
        reference_id=row[3] or "",
        time_created=rfc3339(row[12]),
        account_id="acc_" + row[1].hex(),
        last_seen=None if row[11] is None else rfc3339(row[11]),
    )


class FieldValueRecord(msgspec.Struct):
    id: str
    value: str


class DeviceRecord(msgspec.Struct):
    """devreg's changelog/records.py DeviceRecord, field for field (its JSON is what the
    entry keeps and hashes)."""

    id: str
    account_id: str
    live_mode: bool
    reference_id: str | None
    device_identifier: str | None
    division_id: str
    device_profile_id: str
    status: str
    device_api_allow_read: bool
    device_api_allow_write: bool
    device_api_allow_renew_certificate: bool
    last_seen: int | None
    created: int
    updated: int
    version: int
    fields: list[FieldValueRecord]


def _uuid(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def device_record_json(row: Row, values: list[Row]) -> str:
    fields = sorted((bytes(v[1]), v[2]) for v in values)
    return encode(
        DeviceRecord(
            _uuid(row[0]), _uuid(row[1]), bool(row[2]), row[3], row[4], _uuid(row[5]),
            _uuid(row[6]), row[7], bool(row[8]), bool(row[9]), bool(row[10]), row[11],
            row[12], row[13], row[14], [FieldValueRecord(_uuid(f), v) for f, v in fields],
        )
    ).decode()  # fmt: skip


def entry_hash(prev_hash: bytes, entry: tuple[Any, ...]) -> bytes:
    """changelog/chain.py: SHA-256(prev_hash || the entry's canonical JSON array)."""
    (seq, at, account, live, kind, actor, request, action, kind_of, object_id, version,
     before, after) = entry  # fmt: skip
    content = encode([seq, at, account.hex(), live, kind, actor, request, action, kind_of,
                      object_id.hex(), version, before, after])  # fmt: skip
    return hashlib.sha256(prev_hash + content).digest()


encode = msgspec.json.encode
LOGGED = os.environ.get("BASELINE_CHANGE_LOG", "") not in ("", "0")
ACTOR = ("bearer_token", "key_" + "0" * 32)  # devreg logs the token's key id
decode_update = msgspec.json.Decoder(DeviceUpdate).decode
JSON_HEADERS = [(b"content-type", b"application/json")]
NOT_FOUND = b'{"error":"not_found"}'
_state: dict[str, Any] = {}


async def respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def lifespan(receive: Receive, send: Send) -> None:
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


def device_id_of(text: str) -> bytes | None:
    if not text.startswith("dev_"):
        return None
    try:
        device_id = bytes.fromhex(text[4:])
    except ValueError:
        return None
    return device_id if len(device_id) == 16 else None


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    path: str = scope["path"]
    method: str = scope["method"]
    if path == "/devices" and method == "GET":
        await list_page(scope, send)
        return
    device_id = device_id_of(path[9:]) if path.startswith("/devices/") else None
    if device_id is None:
        await respond(send, 404, NOT_FOUND)
        return
    conn: sqlite3.Connection = _state["conn"]
    account: bytes = _state["account"]
    if method == "GET":
        rows = conn.execute(SELECT_DEVICE, (device_id, account, 1)).fetchall()
    elif method == "PATCH":
        try:
            body = decode_update(await read_body(receive))
        except (msgspec.DecodeError, msgspec.ValidationError):
            await respond(send, 400, b'{"error":"invalid_input"}')
            return
        params = (body.reference_id or None, time.time_ns() // 1000, device_id, account, 1)
        try:
            rows = patch_logged(conn, params) if LOGGED else conn.execute(UPDATE, params).fetchall()
        except sqlite3.IntegrityError:
            await respond(send, 409, b'{"error":"duplicate_reference"}')
            return
    else:
        await respond(send, 405, b'{"error":"method_not_allowed"}')
        return
    if not rows:
        await respond(send, 404, NOT_FOUND)
        return
    await respond(send, 200, encode(device_out(rows[0])))


def patch_logged(conn: sqlite3.Connection, params: tuple[Any, ...]) -> list[Row]:
    """devreg's PATCH with its change log entry, in one transaction, in devreg's order."""
    device_id, now = params[2], params[1]
    conn.execute("BEGIN IMMEDIATE")
    try:
        olds = conn.execute(SELECT_ANY_DEVICE_BY_ID, (device_id,)).fetchall()
        values = conn.execute(SELECT_VALUES_OF_ONE, (device_id,)).fetchall()
        rows = conn.execute(UPDATE, params).fetchall()
        if not rows or not olds:
            conn.execute("COMMIT")
            return rows
        new = rows[0]
        ((last, head_time, prev),) = conn.execute(TAKE_CHANGE_SEQ, (1,)).fetchall()
        at = max(time.time_ns() // 1000, now, head_time)
        entry = (
            last, at, new[1], bool(new[2]), *ACTOR, "req_" + os.urandom(16).hex(),
            "device.update", "device", new[0], new[14],
            device_record_json(olds[0], values), device_record_json(new, values),
        )  # fmt: skip
        digest = entry_hash(prev, entry)
        conn.execute(INSERT_CHANGE, (*entry, prev, digest))
        conn.execute(MOVE_CHANGE_HEAD, (at, digest))
        conn.execute("COMMIT")
        return rows
    except BaseException:
        conn.execute("ROLLBACK")
        raise


async def list_page(scope: Scope, send: Send) -> None:
    """Newest first after the cursor: the cursor's (created_at, id), then one row more than
    the page to know `has_more` - devreg's two statements."""
    params = dict(parse_qsl(scope["query_string"].decode()))
    limit = int(params.get("limit", "30"))
    anchor_id = device_id_of(params.get("starting_after", ""))
    conn: sqlite3.Connection = _state["conn"]
    account: bytes = _state["account"]
    anchor = conn.execute(SELECT_DEVICE_ANY_STATUS, (anchor_id, account, 1)).fetchall()
    if not anchor:
        await respond(send, 400, b'{"error":"invalid_cursor"}')
        return
    cursor = (anchor[0][12], anchor[0][0])
    rows = conn.execute(LIST_OLDER, (account, 1, *cursor, limit + 1)).fetchall()
    page = DeviceList("list", "/devices", len(rows) > limit, [device_out(r) for r in rows[:limit]])
    await respond(send, 200, encode(page))
